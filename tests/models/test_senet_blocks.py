"""SENet-154: the SE module rescales the residual branch before the addition, the
stage layout of the paper's Appendix, and the reduction ratio 16."""
import torch
from torch import nn

from cnnlab.layers import SqueezeExcite
from cnnlab.models.senet import SEBottleneck
from reference import build_on_meta


def test_se_gate_scales_the_residual_branch_only():
    torch.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64))
    block = SEBottleneck(32, 16, groups=4, reduction=16, downsample=down).eval()
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        shortcut = down(x)
        branch = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
        gate = torch.sigmoid(block.se_module.fc2(torch.relu(block.se_module.fc1(branch.mean((2, 3), keepdim=True)))))
        assert torch.allclose(block(x), torch.relu(branch * gate + shortcut), atol=1e-5)
        block.se_module.fc2.bias.fill_(-1e4)  # gate closed: only the shortcut passes
        assert torch.allclose(block(x), torch.relu(shortcut), atol=1e-5)
        block.se_module.fc2.bias.fill_(1e4)  # gate open: a plain ResNeXt bottleneck
        assert torch.allclose(block(x), torch.relu(branch + shortcut), atol=1e-5)


def test_senet154_layout_follows_the_paper_appendix():
    model = build_on_meta("senet154")
    convs = [m for m in model.layer0 if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.out_channels) for c in convs] == [((3, 3), 64), ((3, 3), 64), ((3, 3), 128)]
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert [len(s) for s in stages] == [3, 8, 36, 3]  # ResNeXt-152's depth
    for i, stage in enumerate(stages):
        planes = 64 * 2 ** i
        for block in stage:
            assert isinstance(block.se_module, SqueezeExcite)
            assert block.conv2.groups == 64 and block.conv2.in_channels == 2 * planes  # halved 1x1 width
            assert block.conv3.out_channels == 4 * planes
            assert block.se_module.fc1.out_channels == 4 * planes // 16  # reduction 16
        projection = stage[0].downsample[0]
        assert projection.kernel_size == ((1, 1) if i == 0 else (3, 3))  # 3x3 projection in stages 2-4
        assert projection.stride == ((1, 1) if i == 0 else (2, 2))
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.2
    x = torch.empty(1, 3, 224, 224, device="meta")
    assert model.forward_features(x).shape == (1, 2048, 7, 7)
