"""Models: building blocks and the registered model families (``create_model``)."""

from avstan.models.registry import create_model, list_models, model_arguments, register_model

__all__ = ["create_model", "list_models", "model_arguments", "register_model"]
