"""Renderers: (prepared identity face, absolute AU frames) -> uint8 frames. See ``base``."""

from .base import Prepared, Renderer, RenderResult, available_renderers, get_renderer, register_renderer

__all__ = ["Prepared", "Renderer", "RenderResult", "available_renderers", "get_renderer", "register_renderer"]
