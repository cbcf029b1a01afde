import json
import subprocess
import sys

import cnnlab
from cnnlab.cli import main


def test_models_table(capsys):
    assert main(["models", "vgg1?"]) == 0
    out = capsys.readouterr().out
    assert "vgg16" in out and "138,357,544" in out


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == cnnlab.list_models()
    assert all(isinstance(r["params"], int) and r["params"] > 0 for r in rows)


def test_models_no_match(capsys):
    assert main(["models", "nothing_like_this*"]) == 2
    assert "no model matches" in capsys.readouterr().err


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "models", "lenet*", "--json"],
                          capture_output=True, text=True, check=True)
    assert "lenet5" in [r["name"] for r in json.loads(proc.stdout)]
