"""POST /score (thin: parse, call the pipeline, shape the response)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.deps import RequestIdDep, RuntimeDep
from app.schemas import CandidateOut, TimingsOut, UsageOut, check_text_limit
from app.score.protocol import ScoreRequest, ScoreResponse
from l2t_core.search import MAX_ANSWER_PROBES

router = APIRouter()


@router.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest, request: Request, runtime: RuntimeDep, request_id: RequestIdDep) -> ScoreResponse:
    settings = runtime.settings
    pipeline = runtime.require_pipeline()
    messages = [m.model_dump() for m in body.messages] if body.messages else None
    prompt = pipeline.prompt(body.question, messages, body.prompt_format)
    check_text_limit(prompt.text, settings.max_prompt_chars, "question")
    for i, completion in enumerate(body.completions):
        check_text_limit(completion, settings.max_prompt_chars, f"completions.{i}")
    config = body.reward_config(pipeline.reward_config)
    scored = await runtime.run(
        request,
        lambda cancel: pipeline.score(
            prompt,
            body.completions,
            body.reference,
            config,
            answer_probes=MAX_ANSWER_PROBES if body.progress else 0,
            cancel=cancel,
        ),
    )
    runtime.record(scored.usage, scored.timings, scored.scores)
    return ScoreResponse(
        id=request_id,
        model=settings.model_id,
        scorer_model=settings.scorer_model_id,
        prompt_format=prompt.format,
        candidates=[CandidateOut.from_score(i, s) for i, s in enumerate(scored.scores)],
        usage=UsageOut.from_usage(scored.usage),
        timings=TimingsOut.from_timings(scored.timings),
    )
