"""GET /health, /metrics, /v1/models."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app.core.deps import RuntimeDep

router = APIRouter()
STARTED = int(time.time())


@router.get("/health")
async def health(runtime: RuntimeDep) -> JSONResponse:
    if runtime.ready:
        s = runtime.settings
        return JSONResponse(
            {"status": "ok", "model": s.model_id, "scorer_model": s.scorer_model_id, "engine": s.engine}
        )
    reason = runtime.load_error or ("loading" if runtime.pipeline is None else "engine not healthy")
    return JSONResponse({"status": "unavailable", "reason": reason}, 503)


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/models")
async def models(runtime: RuntimeDep) -> dict[str, object]:
    card = {"id": runtime.settings.model_id, "object": "model", "created": STARTED, "owned_by": "l2t"}
    return {"object": "list", "data": [card]}
