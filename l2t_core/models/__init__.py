"""Loading causal LMs for generation and scoring: the embedded GGUF default, local folders, cached HF ids."""

from l2t_core.models.loading import (
    DEFAULT_MODEL,
    LoadedModel,
    ModelLoadError,
    configured_context_length,
    context_length,
    load_model,
    load_models,
    resolve_device,
)

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "ModelLoadError",
    "configured_context_length",
    "context_length",
    "load_model",
    "load_models",
    "resolve_device",
]
