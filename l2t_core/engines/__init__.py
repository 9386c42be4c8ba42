"""Generation engines behind one interface: transformers (embedded), vllm (in-process), openai (remote)."""

from l2t_core.engines.base import (
    Cancelled,
    EngineError,
    Generation,
    GenerationBatch,
    GenerationEngine,
    SamplingParams,
)
from l2t_core.engines.factory import ENGINES, build_engine

__all__ = [
    "ENGINES",
    "Cancelled",
    "EngineError",
    "Generation",
    "GenerationBatch",
    "GenerationEngine",
    "SamplingParams",
    "build_engine",
]
