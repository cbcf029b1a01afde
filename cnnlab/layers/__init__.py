"""Building blocks shared by two or more model families."""
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.drop_path import DropPath, drop_path
from cnnlab.layers.squeeze_excite import SqueezeExcite

__all__ = ["ConvBnAct", "DropPath", "SqueezeExcite", "drop_path"]
