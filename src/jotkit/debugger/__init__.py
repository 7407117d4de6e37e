"""The jotkit web debugger: a static page that decodes, verifies and audits tokens.

Everything happens in the browser (WebCrypto for signatures); the server only
hands out a fixed set of static files plus the shared ``audit_rules.json`` and
sets a strict Content-Security-Policy so the page cannot talk to third parties.

Use :func:`create_app` for a standalone ASGI app, :func:`mount` to attach it to
an existing Starlette/FastAPI app (the auth service mounts it at
``/debugger`` in demo mode), or :func:`serve` (``jotkit debugger``) to run it
on 127.0.0.1 with uvicorn.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["CSP", "FILES", "create_app", "mount", "serve"]

#: Content-Security-Policy for every response: same-origin only, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: URL name -> (package, resource, media type). Nothing else is ever served.
FILES: dict[str, tuple[str, str, str]] = {
    "index.html": ("jotkit.debugger", "static/index.html", "text/html; charset=utf-8"),
    "app.js": ("jotkit.debugger", "static/app.js", "text/javascript; charset=utf-8"),
    "jose.js": ("jotkit.debugger", "static/jose.js", "text/javascript; charset=utf-8"),
    "audit.js": ("jotkit.debugger", "static/audit.js", "text/javascript; charset=utf-8"),
    "style.css": ("jotkit.debugger", "static/style.css", "text/css; charset=utf-8"),
    "audit_rules.json": ("jotkit", "audit_rules.json", "application/json"),
}

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def read_file(name: str) -> bytes:
    """The bytes of one served file (``KeyError`` for anything not in :data:`FILES`)."""
    package, resource, _ = FILES[name]
    return resources.files(package).joinpath(resource).read_bytes()


def create_app() -> Starlette:
    """A standalone Starlette app serving the debugger page at ``/``."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in FILES:
            return PlainTextResponse("not found", status_code=404, headers=_HEADERS)
        return Response(read_file(name), media_type=FILES[name][2], headers=_HEADERS)

    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/{name:path}", page, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes)


def mount(app: Starlette, path: str = "/debugger") -> None:
    """Mount the debugger page on an existing Starlette/FastAPI ``app`` at ``path``."""
    app.mount(path, create_app(), name="debugger")


def serve(host: str = "127.0.0.1", port: int = 8765, *, log_level: str = "warning") -> None:
    """Run the debugger standalone with uvicorn (blocks until interrupted)."""
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level=log_level)
