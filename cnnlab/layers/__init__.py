"""Building blocks shared by two or more model families."""
from cnnlab.layers.drop_path import DropPath, drop_path

__all__ = ["DropPath", "drop_path"]
