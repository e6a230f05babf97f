"""Serving over HTTP: the app (create_app, to mount in your own ASGI stack) and `serve` (uvicorn, one or more worker
processes). Needs `pip install "nlptransfer[serve]"` (fastapi, uvicorn, prometheus-client)."""
from .app import ServeConfig, create_app
from .run import serve

__all__ = ["create_app", "ServeConfig", "serve"]
