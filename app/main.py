"""The FastAPI app: `create_app()` wires settings, runtime, middleware, error envelope and routers.

The model loads in a background thread at start-up, so /health answers 503 until it is ready.
Tests pass a `Runtime` that is already loaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from app.core.config import Settings
from app.core.errors import install_error_handlers
from app.core.middleware import install_middleware
from app.core.openapi import install_openapi
from app.core.runtime import ClientDisconnected, Runtime
from app.generate.router import router as generate_router
from app.openai.router import router as openai_router
from app.score.router import router as score_router
from app.system.router import router as system_router
from l2t_core import __version__

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if runtime.pipeline is None and runtime.load_error is None:
            threading.Thread(target=runtime.load, name="l2t-load", daemon=True).start()
        yield
        runtime.close()

    app = FastAPI(
        title="l2t",
        version=__version__,
        lifespan=lifespan,
        description="L2T information-gain episode rewards: generate, score, rerank",
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_middleware(app)
    install_openapi(app, runtime.settings)

    @app.exception_handler(ClientDisconnected)
    async def disconnected(request: Request, _exc: ClientDisconnected) -> Response:
        logger.info("client disconnected: request %s cancelled", getattr(request.state, "request_id", None))
        return Response(status_code=499)  # nobody is listening; the status is only for logs and metrics

    for router in (generate_router, score_router, openai_router, system_router):
        app.include_router(router)
    return app
