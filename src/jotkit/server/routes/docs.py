"""``/docs``: Swagger UI served from the installed ``fastapi-offline`` package, never from a
CDN, so it works offline; its own Content-Security-Policy allows only this origin."""

from __future__ import annotations

import html
from importlib import resources

from fastapi import APIRouter, Request, Response

__all__ = ["DOCS_CSP", "router"]

#: The docs page loads its script, styles and the schema from this origin only. Swagger UI
#: sets inline styles, hence ``'unsafe-inline'`` for styles (never for scripts).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_ASSETS: dict[str, str] = {  # file in fastapi_offline/static -> media type
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_INIT = b"""window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout"
});
"""
_HEADERS = {"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs_page(request: Request) -> Response:
    """The Swagger UI page; every URL in it is relative to this origin."""
    title = html.escape(request.app.title)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API docs</title>
<link rel="icon" type="image/png" href="docs/favicon.png">
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script></body></html>
"""
    return Response(page, media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/docs/init.js")
async def docs_init() -> Response:
    """Starts Swagger UI on this service's ``/openapi.json`` (no external validator)."""
    return Response(_INIT, media_type="text/javascript; charset=utf-8", headers=_HEADERS)


@router.get("/docs/{name}")
async def docs_asset(name: str) -> Response:
    """One of the vendored Swagger UI files; anything else is 404."""
    from ..errors import ServiceError

    if name not in _ASSETS:
        raise ServiceError("not_found")
    data = resources.files("fastapi_offline").joinpath("static", name).read_bytes()
    return Response(data, media_type=_ASSETS[name], headers=_HEADERS)
