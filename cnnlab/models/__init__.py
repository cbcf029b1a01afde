"""One module per architecture family; importing this package registers every model."""
from cnnlab.models import (  # noqa: F401  (imported for their @register_model side effects)
    alexnet,
    densenet,
    fractalnet,
    googlenet,
    inception,
    lenet,
    nasnet,
    nin,
    resnet,
    senet,
    squeezenet,
    vgg,
)
from cnnlab.models.base import AuxOutput, CnnModel, InputSizeError

__all__ = ["AuxOutput", "CnnModel", "InputSizeError"]
