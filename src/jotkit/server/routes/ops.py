"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..deps import service
from ..metrics import CONTENT_TYPE_LATEST

__all__ = ["router"]

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness and database check")
async def healthz(request: Request) -> JSONResponse:
    """``{"status": "ok"}``, or 503 when the database does not answer."""
    ok = await service(request).store.ping()
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "database": ok},
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """Counters in the Prometheus text exposition format."""
    return Response(service(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
