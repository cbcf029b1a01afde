"""cnnlab.export: ONNX files that onnxruntime runs to PyTorch's numbers.

Every check runs the written file in onnxruntime on an input of its own (not the
exporter's parity input) and compares with the PyTorch model."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.export import ExportError, export_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """A LeNet-5 trained for one epoch on the bundled digits (the real trainer, through its CLI)."""
    out = tmp_path_factory.mktemp("run") / "lenet5"
    subprocess.run([sys.executable, "-m", "cnnlab", "train", "lenet5", "--dataset", "digits", "--epochs", "1", "--threads", "1",
                    "--progress", "none", "--out", str(out)], check=True, env=ENV, capture_output=True)
    return out


@pytest.mark.parametrize("name,batch", [("lenet5", 1), pytest.param("resnet20", 2, marks=pytest.mark.slow)])
def test_export_matches_pytorch(tmp_path, name, batch):
    torch.manual_seed(0)
    model = cnnlab.create_model(name).eval()
    path = tmp_path / f"{name}.onnx"
    result = export_onnx(model, path, input_size=cnnlab.model_info(name).input_size, batch_size=batch)
    onnx.checker.check_model(str(path))
    assert result.parity["checked"] and result.parity["max_abs_diff"] < 1e-4
    assert result.input_shape == [batch, *cnnlab.model_info(name).input_size]
    x = torch.rand(batch, *cnnlab.model_info(name).input_size) * 4 - 2  # another input than the exporter's
    with torch.no_grad():
        want = model(x).numpy()
    (got,) = run_onnx(path, x)
    assert got.shape == (batch, 10)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_input_size_and_registered_name(tmp_path):
    result = export_onnx("resnet20", tmp_path, input_size=40)  # a folder: the file is named after the model
    assert result.path == str(tmp_path / "resnet20.onnx")
    graph_input = onnx.load(result.path).graph.input[0]
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [1, 3, 40, 40]


@pytest.mark.slow
def test_checkpoint_with_preprocessing_equals_the_test_loader(tmp_path, lenet_run):
    """With preprocess=True the graph takes a raw 8x8 digit (0-255); its logits must be the
    trained model's on the test loader's batch of the same images."""
    from cnnlab.data import load_dataset, make_loader
    from cnnlab.train import load_checkpoint, model_from_checkpoint

    result = export_onnx(lenet_run, tmp_path / "pg.onnx", preprocess=True, activations=True)
    assert result.input_shape == [1, 1, 8, 8] and result.preprocess["plan"] == "resize"
    assert result.output_names[:3] == ["logits", "c1", "act1"]
    assert result.output_shapes[1] == [1, 6, 28, 28]  # C1: 6 maps of 28x28 (LeCun et al. 1998)
    state = load_checkpoint(lenet_run)
    model = model_from_checkpoint(state)
    test = load_dataset("digits", "test")
    loader = make_loader(test.subset(list(range(5))), batch_size=5, train=False,
                         input_size=tuple(state["meta"]["input_size"]))
    x, _ = next(iter(loader))
    with torch.no_grad():
        want = model(x).numpy()
        c1 = model.c1(x).numpy()
    for i in range(5):
        outs = run_onnx(result.path, test.images[i:i + 1].float().numpy())
        np.testing.assert_allclose(outs[0][0], want[i], atol=1e-4, rtol=0)
        np.testing.assert_allclose(outs[1][0], c1[i], atol=1e-5, rtol=0)


def test_unexportable_op_is_named(tmp_path):
    class Histogram(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigvalsh(x[0, 0] @ x[0, 0].T)

    with pytest.raises(ExportError, match=r"operator aten\._linalg_eigh"):
        export_onnx(Histogram(), tmp_path / "h.onnx", input_size=(1, 4, 4))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_parity_failure_is_an_error(tmp_path, monkeypatch):
    """A model whose ONNX graph computes something else than PyTorch must not be written."""
    import cnnlab.export.core as core

    original = core._export

    def tampered(wrapper, x, name, opset, names):
        from types import SimpleNamespace

        from onnx import helper
        proto = original(wrapper, x, name, opset, names).model_proto
        out = proto.graph.output[0].name
        for node in proto.graph.node:
            node.output[:] = [o + "_raw" if o == out else o for o in node.output]
        proto.graph.node.append(helper.make_node("Add", [out + "_raw", out + "_raw"], [out]))  # doubles it
        return SimpleNamespace(model_proto=proto)

    monkeypatch.setattr(core, "_export", tampered)
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_onnx(cnnlab.create_model("lenet5_modern").eval(), tmp_path / "x.onnx", input_size=(1, 32, 32))
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "lenet.onnx"
    assert main(["export", "lenet5", "--format", "onnx", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(out) and out.stat().st_size == report["bytes"]
    assert report["parity"]["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("argv,message", [
    (["export", "no_such_net"], "neither a registered model"),
    (["export", "lenet5", "--format", "tflite"], "unknown --format"),
    (["export", "lenet5", "--opset", "9"], "--opset must be at least"),
    (["export", "runs/missing/best.pt"], "no checkpoint at"),
    (["export", "lenet5", "--input-size", "16"], "does not run on input"),
    (["export", "lenet5", "--preprocess"], "preprocess needs a checkpoint"),
])
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.glob("*.onnx")) == []
