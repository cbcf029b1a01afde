"""The command's layering: --help, --version and argument errors answer without
importing torch; the lazy parser's table of subcommands matches what the parts
register; genuine bugs are reported as bugs, user errors in one line; the registry
does not import the model package."""
import argparse
import importlib
import subprocess
import sys

import pytest

from cnnlab import cli
from cnnlab.cli import main

CHECK = """
import sys
from cnnlab.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
print("TORCH" if "torch" in sys.modules else "NO-TORCH", code, file=sys.stderr)
"""


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["--version"], 0),
    ([], 2),
    (["no-such-command"], 2),
    (["models", "--no-such-flag"], 2),
    (["summary", "--depth", "x", "resnet18"], 2),
    (["lecture", "no-such-example"], 2),
    (["summary", "--help"], 0),
    (["train", "lenet5", "--epochs", "x"], 2),
    (["train", "--help"], 0),
    (["recipes", "--no-such-flag"], 2),
])
def test_answers_without_importing_torch(argv, code):
    proc = subprocess.run([sys.executable, "-c", CHECK.format(argv=argv)], capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"NO-TORCH {code}", proc.stderr[-2000:]


def test_import_cnnlab_and_the_registry_do_not_import_models_or_torch():
    code = ("import sys, cnnlab, cnnlab.registry, cnnlab.errors, cnnlab.cli\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('cnnlab.models')]\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_registry_source_has_no_import_of_the_models_package():
    import inspect

    import cnnlab.registry

    source = inspect.getsource(cnnlab.registry)
    assert "import cnnlab.models" not in source and "from cnnlab.models" not in source.replace(
        "from cnnlab.models.base import FeatureNet", "")


def test_lazy_table_matches_the_parts():
    for part, commands in cli._COMMANDS.items():
        assert part in cli._PARTS
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(part).register(sub)
        assert {a.dest: a.help for a in sub._choices_actions} == commands, part


def test_lazy_and_full_parsers_agree_on_the_commands():
    lazy = cli.build_parser(None, lazy=True)
    full = cli.build_parser()
    names = lambda p: list(next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices)
    assert names(lazy) == names(full)


def _fail_with(exc):
    def handler(args):
        raise exc
    return handler


@pytest.fixture
def failing_models(monkeypatch):
    def use(exc):
        monkeypatch.setattr(cli, "_cmd_models", _fail_with(exc))
    return use


@pytest.mark.parametrize("exc", [TypeError("unsupported operand"), AttributeError("'NoneType' has no attribute"),
                                 KeyError("num_classes"), IndexError("list index out of range"),
                                 RuntimeError("shape mismatch"), ZeroDivisionError("division by zero")])
def test_bugs_are_reported_as_bugs(failing_models, capsys, exc):
    failing_models(exc)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cnnlab models: internal error: {type(exc).__name__}: ")
    assert "This is a bug in cnnlab" in err and "CNNLAB_DEBUG=1" in err
    assert "cnnlab/cli.py:" in err  # where it happened, in cnnlab's code


@pytest.mark.parametrize("exc", [__import__("cnnlab.errors").errors.UserError("bad --epochs: -1"),
                                 ValueError("--lr must be finite"), FileNotFoundError("no such file: x.pt"),
                                 OSError(28, "No space left on device"), cli.CliError("no model matches 'x'")])
def test_user_errors_stay_one_line(failing_models, capsys, exc):
    failing_models(exc)
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err == f"cnnlab models: error: {exc}\n"


def test_unknown_model_argument_is_a_user_error(capsys, monkeypatch):
    import cnnlab

    def handler(args):
        cnnlab.create_model("resnet20", no_such_option=1)
    monkeypatch.setattr(cli, "_cmd_models", handler)
    assert main(["models"]) == 2
    assert "unexpected argument(s) 'no_such_option'" in capsys.readouterr().err


def test_debug_shows_the_traceback(failing_models, monkeypatch):
    failing_models(KeyError("x"))
    monkeypatch.setenv("CNNLAB_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["models"])


def test_every_part_is_in_the_lazy_table():
    # A part missing from cli._COMMANDS still works, but `cnnlab --help` then imports it
    # (and whatever it imports, torch included): list its commands there.
    missing = [part for part in cli._PARTS if part not in cli._COMMANDS]
    assert not missing, f"add these parts' subcommands and help lines to cnnlab.cli._COMMANDS: {missing}"
