"""VGG against Table 1 of Simonyan & Zisserman 2014 and the lecture's VGG16 table."""
import pytest
import torch
from torch import nn

from cnnlab.models.vgg import VGG_CFGS
from reference import build_on_meta

# Convolutions per block (between pools), Table 1: A, B, D, E.
CONVS_PER_BLOCK = {11: [1, 1, 2, 2, 2], 13: [2, 2, 2, 2, 2], 16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}

# The lecture's VGG16 table: output volume of every layer at 224x224.
VGG16_VOLUMES = (
    [(64, 224, 224)] * 2 + [(64, 112, 112)]
    + [(128, 112, 112)] * 2 + [(128, 56, 56)]
    + [(256, 56, 56)] * 3 + [(256, 28, 28)]
    + [(512, 28, 28)] * 3 + [(512, 14, 14)]
    + [(512, 14, 14)] * 3 + [(512, 7, 7)]
    + [(4096,), (4096,), (1000,)]
)


def _layer_outputs(model, size):
    """Output shape of every conv, pool and FC layer at ``size``, on the meta device."""
    shapes = []
    x = torch.empty(1, 3, size, size, device="meta")
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            shapes.append(tuple(x.shape[1:]))
    x = model.avgpool(x).flatten(1)
    for layer in model.classifier:
        x = layer(x)
        if isinstance(layer, nn.Linear):
            shapes.append(tuple(x.shape[1:]))
    return shapes


def test_vgg16_per_layer_output_volumes_at_224():
    shapes = _layer_outputs(build_on_meta("vgg16"), 224)
    assert shapes == VGG16_VOLUMES
    # The lecture's memory column: values in every output plus the 224x224x3 input.
    total = 224 * 224 * 3 + sum(torch.Size(s).numel() for s in shapes)
    assert total == 15_237_608


def test_vgg16_weights_without_biases_match_the_lecture():
    model = build_on_meta("vgg16")
    weights = sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight"))
    assert weights == 138_344_128


@pytest.mark.parametrize("depth", sorted(VGG_CFGS))
@pytest.mark.parametrize("bn", [False, True])
def test_configurations_follow_table_1(depth, bn):
    model = build_on_meta(f"vgg{depth}" + ("_bn" if bn else ""))
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == depth  # "weight layers"
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs)
    blocks, count = [], 0
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            count += 1
        elif isinstance(m, nn.MaxPool2d):
            blocks.append(count)
            count = 0
    assert blocks == CONVS_PER_BLOCK[depth]
    assert [c.out_channels for c in convs][-1] == 512 and [fc.out_features for fc in linears] == [4096, 4096, 1000]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == (len(convs) if bn else 0)


def test_smaller_inputs_work_through_the_adaptive_pool():
    assert _layer_outputs(build_on_meta("vgg11"), 32)[-4:] == [(512, 1, 1), (4096,), (4096,), (1000,)]


def test_unknown_depth_is_rejected():
    from cnnlab.models.vgg import VGG

    with pytest.raises(ValueError, match="depth must be one of"):
        VGG(depth=15)
