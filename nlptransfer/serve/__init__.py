"""Serving over HTTP: the app (create_app, to mount in your own ASGI stack) and `serve` (uvicorn, one or more worker
processes). Needs `pip install "nlptransfer[serve]"` (fastapi, uvicorn, prometheus-client)."""
from .config import DriftSettings, ServeConfig

__all__ = ["create_app", "ServeConfig", "DriftSettings", "serve"]


def __getattr__(name: str):
    # the app needs the serve extras: imported on first use, so the settings (and the command line's flags made from
    # them) load without them
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .run import serve

        return serve
    raise AttributeError(f"module 'nlptransfer.serve' has no attribute '{name}'")
