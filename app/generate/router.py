"""POST /generate (thin: parse, call the pipeline, shape the response)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from app.core.deps import RequestIdDep, RuntimeDep
from app.generate.protocol import GenerateRequest, GenerateResponse
from app.schemas import CandidateOut, TimingsOut, UsageOut, check_text_limit, check_token_budget, sampling_params

router = APIRouter()


@router.post("/generate", response_model=GenerateResponse, response_model_exclude_none=False)
async def generate(
    body: GenerateRequest, request: Request, runtime: RuntimeDep, request_id: RequestIdDep
) -> GenerateResponse:
    settings = runtime.settings
    pipeline = runtime.require_pipeline()
    messages = [m.model_dump() for m in body.messages] if body.messages else None
    prompt = pipeline.prompt(body.prompt, messages, body.prompt_format)
    check_text_limit(prompt.text, settings.max_prompt_chars, "prompt")
    defaulted = {"n", "max_tokens"} - body.model_fields_set
    params = sampling_params(
        settings, body.n, body.max_tokens, body.temperature, body.top_p, body.seed, defaulted=defaulted
    )
    config = body.reward_config(pipeline.reward_config)
    beam = body.beam.model_dump(exclude_none=True) if body.beam else None
    check_token_budget(settings, (beam or {}).get("token_budget"))
    adaptive = body.adaptive.model_dump(exclude_none=True) if body.adaptive else None
    result = await runtime.run(
        request,
        lambda cancel: pipeline.run(
            prompt, params, body.strategy, config, body.reference, beam, cancel, adaptive, body.progress
        ),
    )
    runtime.record(result.usage, result.timings, [r.score for r in result.ranked])
    ranked = [CandidateOut.from_ranked(r) for r in result.ranked]
    return GenerateResponse(
        id=request_id,
        created=int(time.time()),
        model=settings.model_id,
        scorer_model=settings.scorer_model_id,
        strategy=result.strategy,
        prompt_format=result.prompt_format,
        chosen=ranked[0],
        candidates=ranked if body.return_candidates else None,
        samples_drawn=result.samples_drawn,
        usage=UsageOut.from_usage(result.usage),
        timings=TimingsOut.from_timings(result.timings),
    )
