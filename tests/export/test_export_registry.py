"""Registered models export to ONNX at their smallest input and onnxruntime reproduces
them (the exporter's own parity check, plus a second input checked here).

Exporting is slow on a 2-core CPU (seconds for a small net, minutes for the NASNets and
the 1000-layer ResNets), so CI exports one or a few models of every family (REPRESENTATIVES:
the family's distinct code paths: LRN and groups, aux heads, SE, grouped convs, cells,
bypasses) and CNNLAB_EXPORT_ALL=1 exports every registered model."""
import os

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.export import export_onnx

ort = pytest.importorskip("onnxruntime")

REPRESENTATIVES = {
    "alexnet": ["alexnet_original"], "densenet": ["densenet_bc_100_12"], "fractalnet": ["fractalnet20"],
    "googlenet": ["googlenet"], "inception": ["inception_v3"], "lenet": ["lenet5_modern"],
    "nasnet": ["nasnet_cifar"], "nin": ["nin"], "resnet": ["resnet18", "resnext29_8x64d", "seresnet50", "resnet110_sd"],
    "senet": ["senet154"], "squeezenet": ["squeezenet1_0_complex_bypass"], "vgg": ["vgg11_bn"], "zfnet": ["zfnet"],
}
ALL = bool(os.environ.get("CNNLAB_EXPORT_ALL"))
NAMES = cnnlab.list_models() if ALL else [n for names in REPRESENTATIVES.values() for n in names]


def test_every_family_has_a_representative():
    families = {cnnlab.model_info(n).family for n in cnnlab.list_models()}
    assert families == set(REPRESENTATIVES)
    assert all(cnnlab.model_info(n).family == f for f, names in REPRESENTATIVES.items() for n in names)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_model_exports(name, tmp_path):
    info = cnnlab.model_info(name)
    size = (info.input_size[0], info.min_input_size, info.min_input_size)
    torch.manual_seed(0)
    model = cnnlab.create_model(name).eval()
    result = export_onnx(model, tmp_path / "m.onnx", input_size=size)
    assert result.parity["checked"]
    x = torch.randn(1, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    session = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)
