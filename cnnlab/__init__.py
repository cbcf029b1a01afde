"""cnnlab: a laboratory for convolutional network architectures, on PyTorch."""
from cnnlab import registry
from cnnlab.registry import (
    ModelInfo,
    Paper,
    Published,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
    register_model,
)

__version__ = "0.1.0"

# The model families register themselves when cnnlab.models is imported, on the first
# lookup (create_model, list_models, ...): `import cnnlab` stays free of torch.
registry.add_model_source("cnnlab.models")

__all__ = [
    "ModelInfo",
    "Paper",
    "Published",
    "UnknownModelError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    "__version__",
]


def __getattr__(name):
    # Heavier parts load on first use so `import cnnlab` stays quick.
    if name in ("analyze", "Anatomy"):
        from cnnlab import anatomy

        return getattr(anatomy, name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
