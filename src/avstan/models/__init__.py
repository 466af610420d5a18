"""Models: building blocks and the registered model families (``create_model``).

Importing this package imports every model module (video, audio, fusion), whose
``@register_model`` decorators fill the registry; ``registry.py`` itself imports none of
them, so there is no cycle (timm's layout).
"""

from avstan.models import audio, frame, fusion, video  # noqa: F401 - registers the models
from avstan.models.registry import create_model, list_models, model_arguments, register_model

__all__ = ["create_model", "list_models", "model_arguments", "register_model"]
