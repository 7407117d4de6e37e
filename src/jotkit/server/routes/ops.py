"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..deps import service
from ..errors import ServiceError
from ..metrics import CONTENT_TYPE_LATEST
from .models import ErrorBody

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


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    openapi_extra={"security": [{"metricsBearer": []}]},
    responses={
        200: {
            "description": "Counters in the Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: {"model": ErrorBody, "description": "Missing or wrong metrics token"},
        404: {"model": ErrorBody, "description": "Metrics are off (no JOTKIT_METRICS_TOKEN)"},
    },
)
async def metrics(request: Request) -> Response:
    """Counters in the Prometheus text format, for ``Authorization: Bearer
    $JOTKIT_METRICS_TOKEN`` only (RFC 6750 §2.1); without that setting the endpoint is off."""
    svc = service(request)
    expected = svc.settings.metrics_token
    if expected is None:
        raise ServiceError("not_found", "Metrics are off: set JOTKIT_METRICS_TOKEN.")
    header = request.headers.get("authorization")
    if header is None:
        raise ServiceError("missing_token", "The metrics token is required.")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given, expected.encode()):
        raise ServiceError("invalid_token", "Wrong metrics token.")
    return Response(
        svc.metrics.render(),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
