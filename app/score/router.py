"""POST /score (thin: parse, call the serving layer, shape the response)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.deps import RequestIdDep, ServingDep
from app.schemas import CandidateOut, TimingsOut, UsageOut
from app.score.protocol import ScoreRequest, ScoreResponse

router = APIRouter()


@router.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest, request: Request, serving: ServingDep, request_id: RequestIdDep) -> ScoreResponse:
    pipeline = serving.pipeline
    messages = [m.model_dump() for m in body.messages] if body.messages else None
    prompt = pipeline.prompt(body.question, messages, body.prompt_format)
    reward = body.reward_config(pipeline.reward_config)
    scored = await serving.score(request, prompt, body.completions, body.reference, reward, body.progress)
    return ScoreResponse(
        id=request_id,
        model=serving.settings.model_id,
        scorer_model=serving.settings.scorer_model_id,
        compression_penalty_absent=serving.settings.compression_absent,
        prompt_format=prompt.format,
        candidates=[CandidateOut.from_score(i, s) for i, s in enumerate(scored.scores)],
        usage=UsageOut.from_usage(scored.usage),
        timings=TimingsOut.from_timings(scored.timings),
    )
