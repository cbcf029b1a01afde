"""GoogLeNet against Table 1 and section 5 of Szegedy et al. 2014."""
import pytest
import torch
from torch import nn

from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.models.base import AuxOutput
from cnnlab.models.googlenet import GoogLeNet
from reference import build_on_meta, conv_linear_macs

# Output of each Inception module at 224x224 (Table 1: depth x size).
MODULE_OUTPUTS = {
    "inception3a": (256, 28, 28), "inception3b": (480, 28, 28),
    "inception4a": (512, 14, 14), "inception4b": (512, 14, 14), "inception4c": (512, 14, 14),
    "inception4d": (528, 14, 14), "inception4e": (832, 14, 14),
    "inception5a": (832, 7, 7), "inception5b": (1024, 7, 7),
}


def _module_outputs(model, size):
    shapes = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name in list(MODULE_OUTPUTS) + ["aux1.conv", "aux2.conv"]]
    model.train()(torch.empty(1, 3, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize("name", ["googlenet", "googlenet_paper"])
def test_module_outputs_match_table_1(name):
    shapes = _module_outputs(build_on_meta(name), 224)
    assert {k: v for k, v in shapes.items() if k in MODULE_OUTPUTS} == MODULE_OUTPUTS
    # The auxiliary heads' 1x1 conv reads a 4x4 grid at 224 (14x14 pooled 5x5/3).
    assert shapes["aux1.conv"] == shapes["aux2.conv"] == (128, 4, 4)


def test_aux_heads_only_in_train_mode():
    # On the meta device: the output's type and shapes, without the arithmetic.
    model = build_on_meta("googlenet", num_classes=6)
    assert model.aux_loss_weights == (0.3, 0.3)
    x = torch.empty(2, 3, 15, 15, device="meta")
    out = model.train()(x)
    assert isinstance(out, AuxOutput) and len(out.aux) == 2
    assert out.logits.shape == out.aux[0].shape == out.aux[1].shape == (2, 6)
    with torch.no_grad():
        evaluated = model.eval()(x)
    assert isinstance(evaluated, torch.Tensor) and not isinstance(evaluated, AuxOutput)
    assert evaluated.shape == (2, 6)
    model.reset_classifier(4)  # the auxiliary heads follow the new class count
    assert all(a.shape == (2, 4) for a in model.train()(x).aux)


def test_no_aux_logits_gives_plain_logits_in_training():
    with torch.device("meta"):
        model = GoogLeNet(aux_logits=False).train()
    out = model(torch.empty(1, 3, 64, 64, device="meta"))
    assert isinstance(out, torch.Tensor) and not hasattr(model, "aux1")


def test_paper_model_without_aux_has_the_papers_parameter_count():
    with torch.device("meta"):
        model = GoogLeNet(paper=True, aux_logits=False)
    assert sum(p.numel() for p in model.parameters()) == 6_998_552
    # "a computational budget of 1.5 billion multiply-adds at inference time" (section 1),
    # a round figure: within 10%.
    assert abs(conv_linear_macs(model, 224) - 1.5e9) < 0.1 * 1.5e9


def test_paper_model_structure():
    model = build_on_meta("googlenet_paper")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, LocalResponseNorm) for m in model.modules()) == 2
    assert model.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert model.dropout.p == 0.4


def test_torchvision_layout_deviations():
    model = build_on_meta("googlenet")
    assert model.inception3a.branch3[1].conv.kernel_size == (3, 3)  # torchvision's 3x3 "5x5" branch
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) and all(c.bias is None for c in convs)
