"""The sweep: subprocess isolation, OOM and crashes, resume, known costs, CSV, CLI errors."""
import csv
import json
import os

import pytest

from cnnlab.bench import bench, read_results
from cnnlab.cli import main

FAKE = ["bench_fake_models"]
QUICK = dict(min_time=0.01, warmup=1, imports=FAKE)
_FAKE_NAMES = ("bench_troubled", "bench_sleeper", "bench_hog")


@pytest.fixture(scope="module", autouse=True)
def fake_models():
    """Registers the test models (bench_fake_models) for this module only: imported here, not
    at collection, and removed afterwards, so tests parametrized over the registry never see them."""
    import importlib
    import sys

    from cnnlab import registry

    yield importlib.import_module("bench_fake_models")
    for name in _FAKE_NAMES:
        registry._BUILDERS.pop(name, None)
        registry._INFOS.pop(name, None)
    sys.modules.pop("bench_fake_models", None)


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_a_failing_batch_size_does_not_stop_the_sweep(tmp_path):
    out = tmp_path / "b.jsonl"
    recs = bench(["bench_troubled", "bench_sleeper"], [1, 3, 4, 5, 2], out=str(out), **QUICK)
    status = {(r["model"], r["batch_size"]): r["status"] for r in recs}
    assert status == {("bench_troubled", 1): "ok", ("bench_troubled", 3): "oom", ("bench_troubled", 4): "error",
                      ("bench_troubled", 5): "crashed", ("bench_troubled", 2): "ok",
                      **{("bench_sleeper", bs): "ok" for bs in (1, 3, 4, 5, 2)}}
    by = {(r["model"], r["batch_size"]): r for r in recs}
    assert "SIGKILL" in by[("bench_troubled", 5)]["error"]
    assert "a bug at batch size 4" in by[("bench_troubled", 4)]["error"]
    # streamed: one env record, then every result in the file as returned
    lines = _lines(out)
    assert lines[0]["type"] == "env" and lines[0]["torch"] and lines[0]["cpu"]
    assert [(r["model"], r["batch_size"]) for r in lines[1:]] == [(r["model"], r["batch_size"]) for r in recs]


def test_known_latency_and_memory(tmp_path):
    recs = bench(["bench_sleeper", "bench_hog"], [2], min_time=0.2, warmup=1, imports=FAKE)
    sleeper, hog = recs
    # a 20 ms sleep per forward: the median cannot be below it, and is not far above it (loose: a
    # loaded machine wakes a sleeper late); sleeping takes no CPU time, so the CPU clock stays low
    assert 20.0 <= sleeper["latency_ms"]["median"] < 100.0
    assert sleeper["cpu_ms"]["median"] < 10.0
    assert sleeper["runs"] >= 5 and sleeper["latency_ms"]["p99"] >= sleeper["latency_ms"]["p90"] >= sleeper["latency_ms"]["median"]
    assert sleeper["images_per_s"] == pytest.approx(2 / (sleeper["latency_ms"]["median"] / 1000))
    assert sleeper["ms_per_image"] == pytest.approx(sleeper["latency_ms"]["median"] / 2)
    # a 64 MiB tensor per forward: the peak above the baseline holds it
    mib = hog["memory"]["peak_bytes"] / 2**20
    assert 63.5 <= mib < 64 + 48, mib  # a page or two of the tensor may already be resident
    assert sleeper["memory"]["peak_bytes"] / 2**20 < 32
    assert hog["energy"]["available"] or hog["energy"]["reason"]


def test_resume_skips_what_is_measured_and_repairs_a_cut_line(tmp_path):
    out = str(tmp_path / "b.jsonl")
    bench(["bench_sleeper"], [1, 2], out=out, **QUICK)
    with pytest.raises(ValueError, match="--resume"):
        bench(["bench_sleeper"], [1, 2], out=out, **QUICK)
    with open(out, "a") as f:
        f.write('{"type": "result", "model": "bench_sle')  # killed while writing
    recs = bench(["bench_sleeper"], [1, 2, 4], out=out, resume=True, **QUICK)
    assert sorted(r["batch_size"] for r in recs) == [1, 2, 4]
    lines = _lines(out)  # parses: the cut line is gone
    results = [r for r in lines if r["type"] == "result"]
    assert [r["batch_size"] for r in results] == [1, 2, 4]  # 1 and 2 were not measured again
    assert [r["type"] for r in lines].count("env") == 2
    # nothing left to do: the file is untouched
    size = os.path.getsize(out)
    assert len(bench(["bench_sleeper"], [2, 4], out=out, resume=True, **QUICK)) == 2
    assert os.path.getsize(out) == size


def test_a_foreign_file_is_not_resumed(tmp_path):
    out = tmp_path / "notes.jsonl"
    out.write_text("hello\n{\"type\": \"env\"}\n")
    with pytest.raises(ValueError, match="line 1 is not a cnnlab bench record"):
        bench(["bench_sleeper"], [1], out=str(out), resume=True, **QUICK)
    assert out.read_text() == "hello\n{\"type\": \"env\"}\n"


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_sizes=[]), "no batch sizes"),
    (dict(batch_sizes=[0, 1]), "positive integer"),
    (dict(batch_sizes=[2, 2]), "repeat"),
    (dict(models=["lenet6"]), "unknown model 'lenet6'"),
    (dict(models=["lenet5"], input_size=16), "below lenet5's minimum of 32"),
    (dict(device="cuda"), "CUDA is not available"),
    (dict(device="tpu"), "unknown device"),
    (dict(precision="fp8"), "precision must be one of"),
    (dict(min_time=-1), "min_time"),
])
def test_bad_input_fails_before_any_file(tmp_path, kwargs, message):
    import torch

    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "b.jsonl"
    models = kwargs.pop("models", ["bench_sleeper"])
    sizes = kwargs.pop("batch_sizes", [1])
    with pytest.raises(ValueError, match=message):
        bench(models, sizes, out=str(out), imports=FAKE, **kwargs)
    assert not out.exists()


def _cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv, message", [
    (["bench", "lenet5", "--batch-sizes", ""], "--batch-sizes is empty"),
    (["bench", "lenet5", "--batch-sizes", "1,x"], "'x' is not an integer"),
    (["bench", "lenet5", "--batch-sizes", "-2"], "must be positive"),
    (["bench", "lenett5"], "unknown model 'lenett5'"),
    (["bench", "nomatch*"], "no model matches"),
    (["bench", "lenet5", "--input-size", "8"], "below lenet5's minimum"),
    (["compare", "lenet5", "--bench", "/nonexistent.jsonl", "--no-run"], "no such file"),
    (["compare"], "give models, or one of"),
])
def test_cli_errors_are_one_line(capsys, tmp_path, argv, message):
    rc, out, err = _cli(capsys, *argv, *(["--out", str(tmp_path / "o")] if argv[0] == "compare" else []))
    assert rc == 2
    assert err.startswith(f"cnnlab {argv[0]}: error: ") and message in err and err.count("\n") == 1


def test_cli_cuda_without_cuda(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rc, _, err = _cli(capsys, "bench", "lenet5", "--device", "cuda", "--out", str(tmp_path / "b.jsonl"))
    assert rc == 2 and "CUDA is not available" in err
    assert not (tmp_path / "b.jsonl").exists()


def test_cli_bench_writes_jsonl_and_a_csv_with_timm_column_names(capsys, tmp_path):
    out, path = tmp_path / "b.jsonl", tmp_path / "b.csv"
    rc, stdout, _ = _cli(capsys, "bench", "lenet5", "--batch-sizes", "1,2", "--min-time", "0.02", "--warmup", "1",
                         "--out", str(out), "--csv", str(path), "--no-progress")
    assert rc == 0 and "lenet5" in stdout and "median ms" in stdout
    lines = _lines(out)
    assert [r["type"] for r in lines] == ["env", "result", "result"]
    recs = lines[1:]
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert {"model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size",
            "param_count", "infer_gmacs"} <= set(rows[0])
    assert [r["infer_batch_size"] for r in rows] == ["1", "2"]
    assert rows[0]["param_count"] == "0.06"  # LeNet-5: exactly 60,000 trainable parameters
    assert rows[0]["infer_img_size"] == "32"
    for row, rec in zip(rows, recs):
        # timm's samples/s: all timed images over all timed seconds; its step time: the mean, in ms
        assert float(row["infer_samples_per_sec"]) == pytest.approx(rec["batch_size"] * rec["runs"] / rec["timed_s"], abs=0.01)
        assert float(row["infer_step_time"]) == pytest.approx(1000 * rec["timed_s"] / rec["runs"], abs=1e-3)
        assert float(row["latency_median_ms"]) == pytest.approx(rec["latency_ms"]["median"], abs=1e-4)


def test_interrupt_keeps_what_was_measured(tmp_path, monkeypatch):
    import cnnlab.bench.runner as runner

    def fake_worker(job, on_record):  # measures the first batch size, then Ctrl-C arrives
        bs = job["batch_sizes"][0]
        on_record({"type": "start", "model": job["model"], "batch_size": bs})
        on_record({"type": "result", "model": job["model"], "batch_size": bs, "status": "ok",
                   **{k: job[k] for k in ("mode", "precision", "device", "input_size", "channels_last", "compile",
                                          "threads")}})
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_run_worker", fake_worker)
    out = str(tmp_path / "b.jsonl")
    with pytest.raises(KeyboardInterrupt):
        bench(["lenet5"], [1, 2], out=out, threads=1)
    assert [(r["type"], r.get("batch_size")) for r in _lines(out)] == [("env", None), ("result", 1)]
    seen = []

    def record_job(job, on_record):
        seen.append(job["batch_sizes"])
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_run_worker", record_job)
    with pytest.raises(KeyboardInterrupt):
        bench(["lenet5"], [1, 2], out=out, resume=True, threads=1)
    assert seen == [[2]]  # batch size 1 was kept and is not measured again


def test_is_oom():
    import torch

    from cnnlab.bench.measure import is_oom

    assert is_oom(MemoryError())
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_oom(ValueError("out of memory"))  # not an allocation failure


def test_worker_keeps_freed_memory_unless_the_user_chose(monkeypatch):
    import subprocess

    import cnnlab.bench.runner as runner

    seen = {}

    class FakePopen:
        def __init__(self, cmd, env, **kw):
            seen.update(env)
            raise OSError("not started in this test")

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    with pytest.raises(OSError):
        runner._run_worker({}, lambda rec: None)
    assert seen["MALLOC_TRIM_THRESHOLD_"] == str(2**30)
    assert seen["MALLOC_MMAP_THRESHOLD_"] == "65536"  # the user's own setting wins
