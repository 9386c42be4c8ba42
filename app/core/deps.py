"""FastAPI dependencies: the runtime, the serving layer, the settings and the request id, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.runtime import Runtime
from app.serving import Serving


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


def get_serving(request: Request) -> Serving:
    return Serving(request.app.state.runtime)


def get_request_id(request: Request) -> str:
    return str(request.state.request_id)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ServingDep = Annotated[Serving, Depends(get_serving)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
