"""Every Python example in README.md and docs/*.md runs as written, in a fresh process in an
empty folder (data and weights caches in that folder too). An example that needs the
network or a GPU says so on its first line ("# not run by the tests: ...") and is skipped."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = "# not run by the tests:"


def _examples():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for i, m in enumerate(re.finditer(r"```python\n(.*?)```", text, re.S)):
            line = text[: m.start()].count("\n") + 1
            yield pytest.param(m.group(1), id=f"{path.relative_to(ROOT)}:{line}")


@pytest.mark.slow
@pytest.mark.parametrize("code", list(_examples()))
def test_example_runs(code, tmp_path):
    if code.startswith(SKIP):
        pytest.skip(code.splitlines()[0][len(SKIP):].strip())
    env = {**os.environ, "CNNLAB_DATA": str(tmp_path), "CNNLAB_HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_docs_have_examples():
    assert len(list(_examples())) >= 25
