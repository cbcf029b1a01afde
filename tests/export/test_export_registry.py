"""Every registered model exports to ONNX at its smallest input and onnxruntime
reproduces it (the exporter's own parity check, plus a second input checked here).

The export time grows with the graph (seconds for most models, minutes for the
NASNets and the 1000-layer ResNets on a 2-core CPU), so the whole set is `slow` and
the models with more than HEAVY_LEAVES leaf modules run only with CNNLAB_EXPORT_ALL=1."""
import os

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.export import export_onnx

ort = pytest.importorskip("onnxruntime")

HEAVY_LEAVES = 400


def leaves(name):
    with torch.device("meta"):
        model = cnnlab.create_model(name)
    return sum(1 for m in model.modules() if not list(m.children()))


@pytest.mark.slow
@pytest.mark.parametrize("name", cnnlab.list_models())
def test_every_model_exports(name, tmp_path):
    if leaves(name) > HEAVY_LEAVES and not os.environ.get("CNNLAB_EXPORT_ALL"):
        pytest.skip(f"{name} has more than {HEAVY_LEAVES} layers: export takes minutes; set CNNLAB_EXPORT_ALL=1")
    info = cnnlab.model_info(name)
    side = info.min_input_size if isinstance(info.min_input_size, int) else max(info.min_input_size)
    size = (info.input_size[0], max(side, 1), max(side, 1))
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
