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

from app.core.config import Settings, field_choices
from l2t_core.cli import CliError, build_parser
from l2t_core.cli import main as library_main
from l2t_core.config_flags import add_argument
from l2t_core.engines.engine_args import add_engine_arg_flags, engine_args_from

logger = logging.getLogger("app")
LOOPBACK_HOSTS = {"localhost", "::1", "127.0.0.1"}


def add_serve(sub: Any) -> None:
    """`l2t serve` with one flag per server setting, derived from `Settings` (its type, choices and
    description); a flag left out keeps the environment's value (`L2T_<NAME>`), else the default.
    `vllm_args`, a mapping, comes as repeated `--vllm-arg KEY=VALUE` and `--vllm-config FILE.yaml`."""
    prefix = Settings.model_config.get("env_prefix", "")
    serve = sub.add_parser(
        "serve",
        help="run the HTTP server (defaults: embedded SmolLM2, transformers engine)",
        description=f"Every flag is also an environment variable, {prefix}<NAME> (the flag wins).",
    )
    for name, info in Settings.model_fields.items():
        if name == "vllm_args":
            add_engine_arg_flags(serve)  # over L2T_VLLM_ARGS, key by key
            continue
        help_ = f"{info.description}; env {prefix}{name.upper()}"
        # default None: a flag left out is left out of Settings(...), which then reads the environment
        add_argument(serve, name, info.annotation, None, help_, field_choices(Settings, name) or None, info.default)
    serve.set_defaults(handler=run_serve)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The server's settings: the flags given, over the environment, over the defaults."""
    given = {name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None}
    try:
        vllm_args = engine_args_from(args)
        if vllm_args:
            given["vllm_args"] = vllm_args
        return Settings(**given)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def exposure_warning(settings: Settings) -> str | None:
    """A loud warning when the server listens beyond this machine with no API key: anyone who reaches the
    port can then use the model (and, through /health, see what is served)."""
    if settings.api_key or settings.host in LOOPBACK_HOSTS or settings.host.startswith("127."):
        return None
    return (
        f"listening on {settings.host}:{settings.port} with no API key: anyone who can reach this port can use "
        "the server; set L2T_API_KEY (or --api-key), or bind 127.0.0.1"
    )


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.core.runtime import Runtime
    from app.main import create_app

    settings = settings_from_args(args)
    warning = exposure_warning(settings)
    if warning:
        logger.warning(warning)
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
