"""DenseNet: parameter counts against the paper and torchvision, dense connectivity,
depth against the names, and the memory-efficient mode."""
import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.models.densenet import DenseLayer, DenseNet
from reference import build_on_meta, load_manifest


def hand_count(k, blocks, init, stem_kernel, stem_bn, num_classes, bn_size=4, in_chans=3):
    """Parameters of a DenseNet-BC counted from the paper's description (not from the model)."""
    n = in_chans * init * stem_kernel ** 2 + (2 * init if stem_bn else 0)
    c = init
    for b, layers in enumerate(blocks):
        for i in range(layers):
            cin = c + i * k  # dense connectivity: every earlier output is an input
            n += 2 * cin + cin * bn_size * k  # BN + 1x1 bottleneck
            n += 2 * bn_size * k + bn_size * k * 9 * k  # BN + 3x3 conv to k channels
        c += layers * k
        if b < len(blocks) - 1:  # transition with compression 0.5
            n += 2 * c + c * (c // 2)
            c //= 2
    return n + 2 * c + c * num_classes + num_classes


# (name, growth rate k, layers per block, stem channels): the paper's Table 1
IMAGENET = [("densenet121", 32, (6, 12, 24, 16), 64), ("densenet169", 32, (6, 12, 32, 32), 64),
            ("densenet201", 32, (6, 12, 48, 32), 64), ("densenet161", 48, (6, 12, 36, 24), 96)]
# Paper Table 2: DenseNet-BC (L, k) with its parameter count in millions (one decimal).
CIFAR = [("densenet_bc_100_12", 100, 12, 0.8), ("densenet_bc_250_24", 250, 24, 15.3),
         ("densenet_bc_190_40", 190, 40, 25.6)]


@pytest.mark.parametrize("name,k,blocks,init", IMAGENET)
def test_imagenet_hand_count_matches_torchvision_and_model(name, k, blocks, init):
    want = load_manifest(name)["num_params"]
    assert hand_count(k, blocks, init, 7, True, 1000) == want
    assert sum(p.numel() for p in build_on_meta(name).parameters()) == want


@pytest.mark.parametrize("name,depth,k,paper_millions", CIFAR)
def test_cifar_bc_params_match_paper(name, depth, k, paper_millions):
    n = (depth - 4) // 6
    want = hand_count(k, (n, n, n), 2 * k, 3, False, 10)
    got = sum(p.numel() for p in build_on_meta(name).parameters())
    assert got == want
    assert round(got / 1e6, 1) == paper_millions  # the paper prints one decimal


@pytest.mark.parametrize("name", [n for n, *_ in IMAGENET] + [n for n, *_ in CIFAR])
def test_weighted_depth_matches_name(name):
    # 121 = stem conv + 2 convs per dense layer + transition convs + classifier.
    model = build_on_meta(name)
    depth = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert depth == int(name.split("_")[-2] if name.startswith("densenet_bc") else name[len("densenet"):])


def test_dense_connectivity_each_layer_reads_all_earlier_outputs():
    model = cnnlab.create_model("densenet_bc_100_12").eval()
    k, init = 12, 24
    seen = {}
    for name, mod in model.named_modules():
        if isinstance(mod, DenseLayer):
            mod.norm1.register_forward_pre_hook(lambda m, inp, name=name: seen.__setitem__(name, inp[0].shape[1]))
    block_inputs = {}
    for i in (1, 2, 3):
        block = getattr(model.features, f"denseblock{i}")
        block.register_forward_hook(lambda m, inp, out, i=i: block_inputs.__setitem__(i, (inp[0], out)))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    c0 = {1: init, 2: (init + 16 * k) // 2, 3: ((init + 16 * k) // 2 + 16 * k) // 2}
    for b in (1, 2, 3):
        for i in range(16):
            assert seen[f"features.denseblock{b}.denselayer{i + 1}"] == c0[b] + i * k
        x, out = block_inputs[b]
        assert out.shape[1] == c0[b] + 16 * k
        assert torch.equal(out[:, : c0[b]], x)  # the block input is passed on unchanged


def test_memory_efficient_mode_is_the_same_function():
    torch.manual_seed(0)
    plain = DenseNet(growth_rate=4, block_config=(3, 2), num_init_features=8, stem="cifar", num_classes=3)
    ckpt = DenseNet(growth_rate=4, block_config=(3, 2), num_init_features=8, stem="cifar", num_classes=3,
                    memory_efficient=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    outs = []
    for model in (plain, ckpt):
        model.train()
        out = model(x)
        out.square().sum().backward()
        outs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-6)
    for g1, g2 in zip(outs[0][1], outs[1][1]):
        assert torch.allclose(g1, g2, atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="compression"):
        DenseNet(compression=0.0)
    with pytest.raises(ValueError, match="stem"):
        DenseNet(stem="mnist")
    with pytest.raises(ValueError, match="block_config"):
        DenseNet(block_config=())
