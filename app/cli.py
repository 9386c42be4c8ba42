"""`l2t serve` and the `l2t` console script: the library's subcommands plus the server.

The command lives with the app so that the dependency runs one way (`app` imports `l2t_core`, never
the reverse). The model loads in the background while the server already answers `/health` with 503;
a model that fails to load stops the server, and the command exits non-zero with the reason.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from l2t_core.cli import CliError, add_prompt_format, add_suffix_probability, build_parser
from l2t_core.cli import main as library_main
from l2t_core.engines.engine_args import add_engine_arg_flags, engine_args_from
from l2t_core.search import SERVED_STRATEGIES

logger = logging.getLogger("app")


def add_serve(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the HTTP server (defaults: embedded SmolLM2, transformers engine)")
    serve.add_argument("--model", default=None, help="'default', a folder, a .gguf file or a cached HF id")
    serve.add_argument("--engine", choices=["transformers", "vllm", "openai"], default=None)
    serve.add_argument("--remote-url", default=None, help="OpenAI-compatible server for --engine openai")
    add_engine_arg_flags(serve)  # over L2T_VLLM_ARGS, key by key
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--device", default=None)
    serve.add_argument("--scorer-model", default=None, help="a second model for J, rewards and log-probs")
    serve.add_argument("--scorer-device", default=None, help="the scorer model's device (default: --device)")
    serve.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None)
    serve.add_argument("--strategy", choices=SERVED_STRATEGIES, default=None, help="default strategy of requests")
    add_prompt_format(serve, default=None)
    add_suffix_probability(serve, default=None)
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.core.config import Settings
    from app.core.runtime import Runtime
    from app.main import create_app

    overrides = {
        "model": args.model,
        "engine": args.engine,
        "vllm_args": engine_args_from(args) or None,
        "remote_url": args.remote_url,
        "host": args.host,
        "port": args.port,
        "device": args.device,
        "scorer_model": args.scorer_model,
        "scorer_device": args.scorer_device,
        "dtype": args.dtype,
        "strategy": args.strategy,
        "prompt_format": args.prompt_format,
        "suffix_probability": args.suffix_probability,
    }
    try:
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    runtime = Runtime(settings)
    config = uvicorn.Config(create_app(runtime=runtime), host=settings.host, port=settings.port)
    # After uvicorn's own logging set-up (Config applies it), so our INFO lines (the ready line) show.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s", force=True)
    server = uvicorn.Server(config)
    runtime.on_load_failed = lambda: setattr(server, "should_exit", True)
    server.run()
    if runtime.load_error is not None:
        raise CliError(f"the model failed to load, so the server stopped: {runtime.load_error}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return library_main(argv, build_parser([add_serve]))


if __name__ == "__main__":
    sys.exit(main())
