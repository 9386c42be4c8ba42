"""POST /generate (thin: parse, call the serving layer, shape the response)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.deps import RequestIdDep, ServingDep
from app.generate.protocol import GenerateRequest, GenerateResponse

router = APIRouter()


@router.post("/generate", response_model=GenerateResponse, response_model_exclude_none=False)
async def generate(
    body: GenerateRequest, request: Request, serving: ServingDep, request_id: RequestIdDep
) -> GenerateResponse:
    (result,) = await serving.generate(request, [body.to_core(serving)])
    return GenerateResponse.from_result(result, request_id, serving.settings, body.return_candidates)
