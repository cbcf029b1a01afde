"""`cnnlab datasets` and `cnnlab download`."""
import json

from cnnlab.cli import main


def test_datasets_table(capsys, tmp_path):
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder", "shapes"):
        assert name in out
    assert "170.1 MB" in out  # the CIFAR-10 binary archive, 170,052,171 bytes
    assert str(tmp_path) in out


def test_datasets_json(capsys, tmp_path):
    assert main(["datasets", "--json", "--data-dir", str(tmp_path)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["cifar100"]["classes"] == 100 and rows["cifar100"]["image_size"] == [32, 32]
    assert rows["digits"]["present"] and not rows["mnist"]["present"]
    assert rows["mnist"]["train"] == 60000 and rows["mnist"]["test"] == 10000


def test_download_errors_are_one_line_and_exit_2(capsys):
    assert main(["download", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'imagenet'" in err and "Traceback" not in err
