"""The Starlette application behind ``cnnlab serve``.

One HTML page (``static/index.html``) with five views, fed by a small JSON API:

    GET /api/models                  the zoo: every registered model (MACs filled in as computed)
    GET /api/analyze?model=&input_size=&batch_size=    cnnlab.analyze as JSON
    GET /api/runs                    every run under the runs folder
    GET /api/run?id=RUN              one run: summary, config, metrics records
    GET /api/run/events?id=RUN       server-sent events: the run's metrics.jsonl (and layers.jsonl) as they grow
    GET /api/run/layers?id=RUN       the run's layers.jsonl (cnnlab train --layer-stats N), if any
    GET /api/playground              the playground's checkpoint, classes and test images
    GET /api/playground/model.onnx   that checkpoint exported to ONNX (with each layer's output)
    GET /api/compare                 saved bench/compare results (*.jsonl, *.json), if any
    GET /api/compare/figure?name=    a PNG figure from the results folder

What it serves: its own static files and what it reads from the runs (and results)
folder, never a path outside them. Nothing the browser sends is loaded as code or
unpickled; request bodies over ``MAX_BODY_BYTES`` are refused with 413 (the app has
no upload: the playground runs in the browser).
"""
from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cnnlab.web import runs as R

__all__ = ["create_app", "STATIC_DIR", "MAX_BODY_BYTES"]

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1 << 20          # 1 MiB: the app takes no uploads at all
MAX_INPUT_SIDE = 2048             # largest H or W the model page analyzes
MAX_BATCH = 1 << 16
SSE_POLL_S = 0.25                 # how often a live view looks at metrics.jsonl
SAMPLES = 12                      # test images offered in the playground
VENDOR_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "uPlot.iife.min.js",
                "uPlot.min.css")

mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")

CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'none'")


# Building models and tracing them (meta-device builds, cnnlab.analyze, ONNX export) goes
# through PyTorch's global device/function modes, which are not safe to use from two
# threads at once: the app does all of it under this lock.
TORCH_LOCK = threading.RLock()


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class LimitBody:
    """ASGI middleware: 413 for a request whose body is (or announces itself) larger
    than ``limit`` bytes; security headers on every response."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = False
        if length is not None:
            try:
                too_big = int(length) > self.limit
            except ValueError:
                return await _error("bad Content-Length", 400)(scope, receive, send)
        if too_big:
            return await _error(f"request body over {self.limit} bytes", 413)(scope, receive, send)
        receive = await self._buffered(receive) if length is None and scope["method"] not in ("GET", "HEAD") \
            else receive
        if receive is None:
            return await _error(f"request body over {self.limit} bytes", 413)(scope, _empty, send)

        async def secure_send(message):
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, secure_send)

    async def _buffered(self, receive):
        """A body without Content-Length (chunked) is read here, up to the limit, and
        replayed; None when it is over the limit."""
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                return None
            if not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()
        return replay


async def _empty():
    return {"type": "http.request", "body": b"", "more_body": False}


# ----------------------------------------------------------------------------------
# The zoo


class Zoo:
    """Rows of the zoo table. Parameters come at once (published exact counts or a
    meta-device build); MACs come from ``cnnlab.analyze`` at each model's default
    input, computed in a background thread and filled in as they are ready."""

    def __init__(self):
        from cnnlab.registry import list_models

        self.names = list_models()
        self.rows: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._fill, name="cnnlab-zoo", daemon=True)
                self.thread.start()

    def _info(self, name: str) -> dict[str, Any]:
        """What the registry says, without building anything."""
        from cnnlab.registry import model_info

        info = model_info(name)
        p = info.published
        return {
            "name": name, "family": info.family, "year": info.paper.year, "paper": info.paper.title,
            "arxiv": info.paper.arxiv, "input_size": list(info.input_size), "dataset": info.dataset,
            "num_classes": info.num_classes, "params": None, "macs": None, "macs_error": None,
            "published_top1": p.top1, "published_top5": p.top5, "published_error": p.error,
            "published_dataset": p.dataset, "published": p.accuracy_text(), "published_macs": p.macs,
            "description": info.description, "weights": _weight_tags(name),
        }

    def _fill(self) -> None:
        from cnnlab.anatomy.core import analyze
        from cnnlab.cli import count_params

        for name in self.names:  # first the parameter counts (quick), then the MACs
            row = self._info(name)
            try:
                with TORCH_LOCK:
                    row["params"] = count_params(name)
            except Exception as exc:
                row["macs_error"] = _first_line(exc)
            with self.lock:
                self.rows[name] = row
        for name in self.names:
            row = self.rows[name]
            if row["macs_error"]:
                continue
            try:
                with TORCH_LOCK:
                    macs = int(analyze(name).totals["macs"])
            except Exception as exc:  # shown in the table, never fatal to the server
                with self.lock:
                    row["macs_error"] = _first_line(exc)
                continue
            with self.lock:
                row["macs"] = macs

    def table(self) -> dict[str, Any]:
        self.start()
        with self.lock:
            out = [dict(self.rows[n]) if n in self.rows else self._info(n) for n in self.names]
        done = sum(1 for r in out if r["macs"] is not None or r["macs_error"])
        return {"models": out, "macs_done": done, "total": len(out),
                "macs_note": "multiply-accumulates of conv + linear per image at the model's default input "
                             "(cnnlab.analyze)"}


def _weight_tags(name: str) -> list[str]:
    """The tags of the published checkpoints of ``name`` (cnnlab.weights), default first."""
    from cnnlab.weights import weight_tags

    return weight_tags(name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ----------------------------------------------------------------------------------
# The playground


class Playground:
    """A checkpoint exported to ONNX with every top-level layer's output and the test
    loader's preprocessing in the graph (see :mod:`cnnlab.export`)."""

    def __init__(self, runs_dir: Path, checkpoint: str | None):
        self.runs_dir = runs_dir
        self.checkpoint = checkpoint
        self.lock = threading.Lock()
        self.cache: dict[tuple, dict[str, Any]] = {}

    def _source(self) -> Path | None:
        if self.checkpoint:
            return Path(self.checkpoint)
        for run in R.find_runs(self.runs_dir):
            summary = R.run_summary(self.runs_dir, run)
            if summary["model"] == "lenet5" and summary["checkpoint"] and summary["status"] != "running":
                return run / summary["checkpoint"]
        return None

    def get(self) -> dict[str, Any]:
        source = self._source()
        if source is None:
            return {"available": False, "message": f"no LeNet-5 checkpoint under {self.runs_dir}: train one with "
                                                   f"`cnnlab train lenet5 --out {self.runs_dir}/lenet5`"}
        path = source / "best.pt" if source.is_dir() and (source / "best.pt").exists() else source
        if source.is_dir() and not (source / "best.pt").exists():
            path = source / "last.pt"
        try:
            key = (str(path.resolve()), path.stat().st_mtime_ns)
        except FileNotFoundError:
            return {"available": False, "message": f"no checkpoint at {path}"}
        with self.lock:
            if key not in self.cache:
                self.cache.clear()
                self.cache[key] = self._build(path)
            return self.cache[key]

    def _build(self, path: Path) -> dict[str, Any]:
        from cnnlab.export import export_onnx
        from cnnlab.train import load_checkpoint

        try:
            state = load_checkpoint(path)
            meta, epoch = state["meta"], state.get("epoch")
            del state
            with tempfile.TemporaryDirectory(prefix="cnnlab-web-") as tmp, TORCH_LOCK:
                result = export_onnx(path, Path(tmp) / "playground.onnx", activations=True, preprocess=True)
                blob = Path(result.path).read_bytes()
        except Exception as exc:
            return {"available": False, "message": f"cannot export {path} for the playground: "
                                                   f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"}
        classes = list(meta.get("classes") or []) or [str(i) for i in range(int(meta["num_classes"]))]
        info = {
            "available": True, "checkpoint": str(path), "model": meta["model"], "dataset": meta["dataset"],
            "epoch": epoch, "classes": classes, "input_name": result.input_name,
            "input_shape": result.input_shape, "outputs": [{"name": n, "shape": s} for n, s in
                                                           zip(result.output_names, result.output_shapes)],
            "preprocess": result.preprocess, "parity": result.parity, "onnx_bytes": len(blob),
            "samples": self._samples(meta),
        }
        return {"info": info, "onnx": blob}

    @staticmethod
    def _samples(meta: dict[str, Any]) -> list[dict[str, Any]]:
        """The first test images of the checkpoint's dataset, if it is on disk (no download)."""
        try:
            from cnnlab.data import load_dataset

            test = load_dataset(meta["dataset"], "test", download=False)
        except Exception:
            return []
        # the first test image of each class (test splits may be sorted by class), then the next ones
        labels = [int(v) for v in test.labels.tolist()]
        chosen = sorted({labels.index(c) for c in set(labels)})[:SAMPLES]
        chosen += [i for i in range(len(labels)) if i not in chosen][: SAMPLES - len(chosen)]
        out = []
        for i in sorted(chosen):
            image, label = test[i]
            out.append({"index": i, "label": int(label), "shape": list(image.shape),
                        "pixels": [int(v) for v in image.flatten().tolist()]})
        return out


# ----------------------------------------------------------------------------------
# Compare


def _compare_figure(results_dir: Path | None, name: str) -> Path | None:
    """A PNG figure inside the results folder (no traversal, no links), or None."""
    if results_dir is None or not name or not name.endswith(".png"):
        return None
    parts = [p for p in name.split("/") if p]
    if any(p in ("..", ".") or p.startswith(".") for p in parts):
        return None
    return _inside(results_dir, results_dir.joinpath(*parts))


def _inside(root: Path, path: Path) -> Path | None:
    """``path`` if it is a regular file (not a link) whose real location is under ``root``."""
    if path.is_symlink() or not path.is_file():
        return None
    real = path.resolve()
    return real if root.resolve() in real.parents else None


def _compare(results_dir: Path | None) -> dict[str, Any]:
    """Every ``*.jsonl`` / ``*.json`` results file in the results folder, as records, and
    the PNG figures there (``cnnlab compare`` draws them)."""
    if results_dir is None or not results_dir.is_dir():
        return {"files": [], "figures": [], "folder": str(results_dir) if results_dir else None}
    figures = [p.relative_to(results_dir).as_posix() for p in sorted(results_dir.rglob("*.png"))
               if _compare_figure(results_dir, p.relative_to(results_dir).as_posix())][:50]
    files = []
    for path in sorted(results_dir.rglob("*")):
        if path.suffix not in (".jsonl", ".json") or _inside(results_dir, path) is None:
            continue
        if path.stat().st_size > 32 * MAX_BODY_BYTES:
            continue
        if path.suffix == ".jsonl":
            records, _ = R.read_metrics(path)
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            records = data if isinstance(data, list) else (data.get("rows") or data.get("results") or [data]) \
                if isinstance(data, dict) else []
        records = [r for r in records if isinstance(r, dict)]
        if records:
            files.append({"name": path.relative_to(results_dir).as_posix(), "records": records[:5000]})
    return {"files": files, "figures": figures, "folder": str(results_dir)}


# ----------------------------------------------------------------------------------
# The application


LOCAL_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(runs_dir: str | os.PathLike = "runs", *, playground: str | None = None,
               results_dir: str | os.PathLike | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The web app. ``runs_dir``: training runs; ``playground``: the checkpoint the
    playground runs (default: the newest LeNet-5 run); ``results_dir``: bench/compare
    results (default: ``compare`` or ``results`` next to the runs folder);
    ``allowed_hosts``: the Host headers it answers (default: this machine's loopback
    names only, so that a web page cannot reach it through DNS rebinding)."""
    missing = [f for f in VENDOR_FILES if not (STATIC_DIR / "vendor" / f).is_file()]
    if missing:
        raise FileNotFoundError(f"the page's libraries are missing from {STATIC_DIR / 'vendor'} ({', '.join(missing)}): "
                                "run `make static` in the cnnlab source tree (npm ci + copy)")
    runs_root = Path(runs_dir).expanduser().resolve()
    if results_dir:
        results = Path(results_dir).expanduser().resolve()
    else:  # `cnnlab compare`'s default output folder, or a results folder, next to the runs
        candidates = [runs_root.parent / "compare", runs_root.parent / "results"]
        results = next((c for c in candidates if c.is_dir()), candidates[0])
    if playground is not None and not Path(playground).exists():
        raise FileNotFoundError(f"no checkpoint at {playground}")
    zoo = Zoo()
    play = Playground(runs_root, playground)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-store"})

    async def api_models(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(zoo.table))

    async def api_analyze(request: Request) -> Response:
        from cnnlab.registry import is_model

        q = request.query_params
        name = q.get("model", "")
        if not is_model(name):
            return _error(f"no registered model {name!r}", 404)
        try:
            batch = int(q.get("batch_size") or 1)
        except ValueError:
            return _error(f"batch size must be an integer, got {q.get('batch_size')!r}")
        if not 1 <= batch <= MAX_BATCH:
            return _error(f"batch size must be in 1..{MAX_BATCH}")
        size = q.get("input_size") or None
        if size is not None and (len(size) > 32 or not all(c.isdigit() or c in "x, " for c in size)):
            return _error(f"input size {size!r} is not a size: give H, HxW or CxHxW")

        def work():
            from cnnlab.anatomy.core import analyze, parse_input_size
            from cnnlab.registry import model_info

            parsed = parse_input_size(size, model_info(name).input_size[0]) if size else None
            if parsed and max(parsed[1:]) > MAX_INPUT_SIDE:
                raise ValueError(f"input side over {MAX_INPUT_SIDE} pixels")
            with TORCH_LOCK:
                return json.loads(analyze(name, parsed, batch_size=batch).to_json())

        try:
            return JSONResponse(await run_in_threadpool(work))
        except Exception as exc:
            return _error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    async def api_runs(request: Request) -> Response:
        def work():
            return [R.run_summary(runs_root, p) for p in R.find_runs(runs_root)]
        return JSONResponse({"folder": str(runs_root), "exists": runs_root.is_dir(),
                             "runs": await run_in_threadpool(work)})

    def _run(request: Request) -> Path:
        return R.resolve_run(runs_root, request.query_params.get("id", ""))

    async def api_run(request: Request) -> Response:
        try:
            path = _run(request)
        except R.RunError as exc:
            return _error(str(exc), 404)
        config = R._read_json(path / "config.json")
        records, _ = R.read_metrics(path / "metrics.jsonl")
        body = {"summary": R.run_summary(runs_root, path), "config": config,
                "results": R._read_json(path / "results.json"), "records": [json.loads(s) for s in R.iter_lines(records)]}
        return JSONResponse(body)

    async def api_run_events(request: Request) -> Response:
        try:
            path = _run(request)
        except R.RunError as exc:
            return _error(str(exc), 404)
        tail = R.MetricsTail(path / "metrics.jsonl")
        layers = R.MetricsTail(path / R.LAYERS_FILE, no_links=True)

        def layer_events() -> list[str]:
            records, restarted = layers.poll()
            events = ["event: layers-restart\ndata: {}\n\n"] if restarted else []
            return events + [f"event: layers\ndata: {json.dumps(R.deep_clean(r), allow_nan=False)}\n\n"
                             for r in records]

        async def stream():
            yield "retry: 2000\n\n"
            quiet = 0.0
            while True:
                if await request.is_disconnected():
                    return
                records, restarted = tail.poll()
                if restarted:
                    yield "event: restart\ndata: {}\n\n"
                for line in R.iter_lines(records):
                    yield f"event: record\ndata: {line}\n\n"
                for event in await run_in_threadpool(layer_events):
                    yield event
                if tail.finished():
                    more, _ = tail.poll()
                    for line in R.iter_lines(more):
                        yield f"event: record\ndata: {line}\n\n"
                    for event in await run_in_threadpool(layer_events):
                        yield event
                    yield "event: done\ndata: {}\n\n"
                    return
                quiet += SSE_POLL_S
                if quiet >= 15:  # a comment keeps proxies and the browser from timing out
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(SSE_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def api_run_layers(request: Request) -> Response:
        try:
            path = _run(request)
        except R.RunError as exc:
            return _error(str(exc), 404)
        records = await run_in_threadpool(R.read_layers, path)
        return JSONResponse({"records": records})

    async def api_playground(request: Request) -> Response:
        got = await run_in_threadpool(play.get)
        return JSONResponse(got.get("info", got))

    async def api_playground_onnx(request: Request) -> Response:
        got = await run_in_threadpool(play.get)
        if "onnx" not in got:
            return _error(got.get("message", "no playground model"), 404)
        return Response(got["onnx"], media_type="application/octet-stream", headers={"cache-control": "no-store"})

    async def api_compare(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(_compare, results))

    async def api_compare_figure(request: Request) -> Response:
        path = _compare_figure(results, request.query_params.get("name", ""))
        if path is None:
            return _error("no such figure", 404)
        return FileResponse(path, media_type="image/png")

    async def not_found(request: Request, exc) -> Response:
        return _error("not found", 404)

    routes = [
        Route("/", index),
        Route("/api/models", api_models),
        Route("/api/analyze", api_analyze),
        Route("/api/runs", api_runs),
        Route("/api/run", api_run),
        Route("/api/run/events", api_run_events),
        Route("/api/run/layers", api_run_layers),
        Route("/api/playground", api_playground),
        Route("/api/playground/model.onnx", api_playground_onnx),
        Route("/api/compare", api_compare),
        Route("/api/compare/figure", api_compare_figure),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.add_middleware(LimitBody)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOCAL_NAMES))
    app.state.runs_dir = runs_root
    app.state.results_dir = results
    app.state.zoo = zoo
    app.state.started = time.time()
    return app
