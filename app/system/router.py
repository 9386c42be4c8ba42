"""GET /health, /metrics, /v1/models, /version; POST /tokenize and /detokenize (vLLM's shapes)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.core.deps import RuntimeDep, ServingDep
from app.core.middleware import authorized
from app.core.openapi import ERROR_STATUSES, ErrorResponse
from app.system.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
    VersionResponse,
)
from app.system.tokenization import detokenize, tokenize
from l2t_core import __version__

router = APIRouter()
# the native routes that, like /v1, answer 404 for a model not served here
NAMES_A_MODEL: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": ERROR_STATUSES["404"]}
}
STARTED = int(time.time())


@router.get("/health")
async def health(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Open to every caller (load balancers, the image's HEALTHCHECK); with L2T_API_KEY set, what is served
    and why it is down (model paths, the load error) only for callers that send the key."""
    s = runtime.settings
    details = authorized(request.headers.get("authorization"), s.api_key)
    if runtime.ready:
        served = (
            {"model": s.model_id, "scorer_model": s.scorer_model_id, "engine": s.engine, "scorer": s.scorer}
            if details
            else {}
        )
        return JSONResponse({"status": "ok", **served})
    reason = runtime.load_error or ("loading" if runtime.pipeline is None else "engine not healthy")
    return JSONResponse({"status": "unavailable", **({"reason": reason} if details else {})}, 503)


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/models")
async def models(runtime: RuntimeDep) -> dict[str, object]:
    card = {"id": runtime.settings.model_id, "object": "model", "created": STARTED, "owned_by": "l2t"}
    return {"object": "list", "data": [card]}


@router.get("/version")
async def version() -> VersionResponse:
    return VersionResponse(version=__version__)


@router.post("/tokenize", responses=NAMES_A_MODEL)
def tokenize_text(body: TokenizeRequest, serving: ServingDep) -> TokenizeResponse:
    """A prompt's or a chat's token ids under the generator's tokenizer (a worker thread: the tokenizer
    is synchronous)."""
    return tokenize(serving, body)


@router.post("/detokenize", responses=NAMES_A_MODEL)
def detokenize_tokens(body: DetokenizeRequest, serving: ServingDep) -> DetokenizeResponse:
    return detokenize(serving, body)
