"""Building blocks shared by two or more model families."""
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.drop_path import DropPath, drop_path
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.mlp_head import MlpHead
from cnnlab.layers.squeeze_excite import SqueezeExcite

__all__ = ["ConvBnAct", "DropPath", "LocalResponseNorm", "MlpHead", "SqueezeExcite", "drop_path"]
