"""Server-rendered hosted pages (Jinja2, autoescaped): login, consent, logout, messages.

Every page is sent with a strict Content-Security-Policy: no script at all, styles only from
this server (``/oauth/pages/*.css``), images from this server or the configured https logo,
forms posted only to this server (and, where the form ends in a redirect to a client, to that
client's origin: Chromium applies ``form-action`` to the redirect after a form submission),
and ``frame-ancestors 'none'`` plus ``X-Frame-Options: DENY`` against clickjacking.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from ..sessions import AuthService

__all__ = ["Brand", "form_fields", "page_response", "router", "single_fields"]

_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_PATH = "/oauth/pages/pages.css"
BRAND_PATH = "/oauth/pages/brand.css"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Brand:
    """What the pages show: the issuer's product name, accent colour and logo."""

    name: str
    color: str
    logo_url: str | None


@lru_cache(maxsize=1)
async def form_fields(request: Request, max_fields: int) -> list[tuple[str, str]] | None:
    """A hosted page's posted form as ``(name, text)`` pairs in order, at most
    ``max_fields``; None when it carries a file (the pages post text only)."""
    form = await request.form(max_files=0, max_fields=max_fields)
    pairs: list[tuple[str, str]] = []
    for name, value in form.multi_items():
        if not isinstance(value, str):
            return None
        pairs.append((name, value))
    return pairs


def single_fields(pairs: Iterable[tuple[str, str]] | None) -> dict[str, str] | None:
    """The fields by name; None when the form is malformed (a file, or a repeated field)."""
    if pairs is None:
        return None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            return None
        out[name] = value
    return out


def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_DIR)),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _origin(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def csp(svc: AuthService, form_targets: Iterable[str] = ()) -> str:
    """The page CSP; ``form_targets`` are URIs the page's forms may end up redirecting to."""
    images = "'self'"
    logo = svc.settings.brand_logo_url
    if logo and logo.startswith("https://"):
        origin = _origin(logo)
        if origin:
            images += " " + origin
    forms = ["'self'", *sorted({o for o in (_origin(u) for u in form_targets) if o})]
    return (
        "default-src 'none'; style-src 'self'; "
        f"img-src {images}; form-action {' '.join(forms)}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


def page_response(
    request: Request,
    template: str,
    *,
    title: str,
    status: int = 200,
    form_targets: Iterable[str] = (),
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the brand; never cached, never framed."""
    svc: AuthService = request.app.state.service
    s = svc.settings
    html = _env().get_template(template).render(
        lang="en",
        title=title,
        brand=Brand(s.brand_name, s.brand_color, s.brand_logo_url),
        static_url=STATIC_PATH,
        brand_css_url=BRAND_PATH,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": csp(svc, form_targets),
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            "Referrer-Policy": "no-referrer",
        },
    )


def message_page(
    request: Request, title: str, message: str, *, status: int = 200, detail: str | None = None
) -> HTMLResponse:
    """A page that only says something (errors, "signed out")."""
    return page_response(
        request,
        "message.html",
        title=title,
        status=status,
        message=message,
        detail=detail,
        is_error=status >= 400,
    )


_CSS_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "X-Content-Type-Options": "nosniff",
}


@router.get(STATIC_PATH)
async def pages_css() -> Response:
    """The pages' style sheet."""
    return Response(
        (_DIR / "pages.css").read_bytes(), media_type="text/css", headers=_CSS_HEADERS
    )


@router.get(BRAND_PATH)
async def brand_css(request: Request) -> Response:
    """The accent colour from ``JOTKIT_BRAND_COLOR`` (validated as ``#rgb``/``#rrggbb``)."""
    color = request.app.state.service.settings.brand_color
    return Response(f":root{{--brand:{color}}}\n", media_type="text/css", headers=_CSS_HEADERS)
