"""Recognizer models, registered by name (timm style): ``create_model("branches", num_classes=3)``.

Each model lives in its own module here and registers itself with ``@register_model``; the
built-in modules are imported on first use so that importing the package stays light.
"""

from .registry import InputSpec, RecognizerModel, available_models, create_model, register_model

__all__ = ["InputSpec", "RecognizerModel", "available_models", "create_model", "register_model"]
