"""Fixtures for the web tests: a trained run, the real `cnnlab serve` on an ephemeral
127.0.0.1 port, and Debian's headless Chromium driven by Playwright."""
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def cnnlab(*args, **kw):
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], env=ENV, **kw)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """runs/ with one finished LeNet-5 run (2 epochs on its default data, the bundled MNIST
    subset), results/ for compare."""
    base = tmp_path_factory.mktemp("web")
    (base / "runs").mkdir()
    (base / "results").mkdir()
    cnnlab("train", "lenet5", "--epochs", "2", "--threads", "1", "--progress", "none",
           "--out", str(base / "runs" / "lenet5"), check=True, capture_output=True)
    return base


class Server:
    def __init__(self, proc, url, stderr_lines):
        self.proc, self.url, self.stderr_lines = proc, url, stderr_lines


def start_server(*args, env=None):
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", "--port", "0", *args],
                            env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"(http://\S+/)", line)
        if m:
            # keep reading the server's log so that it never blocks on a full pipe
            threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
            return Server(proc, m.group(1), lines)
    proc.kill()
    raise RuntimeError("cnnlab serve did not start: " + "".join(lines))


def stop_server(server):
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(workdir):
    s = start_server("--runs", str(workdir / "runs"), "--results", str(workdir / "results"))
    yield s
    stop_server(s)
    log = "".join(s.stderr_lines)
    assert "Traceback" not in log and " 500 " not in log, log


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page; the test fails if the page logs any console error or throws."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors = []
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.console_errors = errors
    yield pg
    context.close()
    assert errors == [], errors


def wait_js(page, expression, timeout=60.0):
    """Poll a JavaScript expression until it is truthy (page.evaluate, not
    wait_for_function: the app's Content-Security-Policy forbids the eval that needs)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        page.wait_for_timeout(100)
    raise TimeoutError(f"{expression} still false after {timeout} s")


def open_view(page, url, timeout=60_000):
    # a hash change is a same-document navigation: mark the view stale first
    page.evaluate("() => { const v = document.getElementById('view'); if (v) v.dataset.ready = '0'; }")
    if page.url == url:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_selector("#view[data-ready='1']", timeout=timeout)


def follow_live_run(page, view_url, out, *train_args, selector, attribute, epochs):
    """Train LeNet-5 on digits for ``epochs`` into ``out`` while the page at ``view_url``
    watches it; returns every value the ``selector`` element's ``attribute`` took until the
    page said the run finished (the run must have succeeded)."""
    train = subprocess.Popen([sys.executable, "-m", "cnnlab", "train", "lenet5", "--dataset", "digits", "--epochs",
                              str(epochs), "--threads", "1", "--progress", "none", "--out", str(out), *train_args],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / "config.json").exists() and time.time() < deadline and train.poll() is None:
            time.sleep(0.05)
        open_view(page, view_url)
        seen = set()
        deadline = time.time() + 120
        while time.time() < deadline:
            seen.add(int(page.get_attribute(selector, attribute)))
            if page.inner_text("#run-status") == "finished":
                break
            page.wait_for_timeout(100)
        assert train.wait(timeout=60) == 0, train.stderr.read()
    finally:
        if train.poll() is None:
            train.kill()
    return seen
