"""WSGI and ASGI middleware that authenticate every request (upstream's import path)."""

from __future__ import annotations

from .asgi import MAuthASGIMiddleware
from .wsgi import MAuthWSGIMiddleware

__all__ = ["MAuthASGIMiddleware", "MAuthWSGIMiddleware"]
