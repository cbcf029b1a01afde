"""The weights cache: download once (through cnnlab's resumable, checksummed, atomic
downloader), then re-verify cheaply before each use.

A file is fetched to ``CACHE/NAME`` (``CACHE`` is ``$CNNLAB_HOME/weights``, else the user
cache folder ``$XDG_CACHE_HOME/cnnlab/weights``, i.e. ``~/.cache/cnnlab/weights``). Once
its checksum has been verified, a record ``CACHE/NAME.sha256.json`` keeps its full
SHA-256, size and modification time. A later use compares only the size and
modification time with the record (and the record's hash with the registry entry): a
file that changed since it was verified is hashed again in full, and a file that no
longer matches is deleted (with a message saying so) and fetched again.
"""
from __future__ import annotations

import json
import logging
import os
import urllib.error
from pathlib import Path

from cnnlab.weights.spec import Weights, WeightsError

__all__ = ["HOME_ENV", "cache_dir", "cached_path", "is_cached", "fetch_weights", "verify_cached"]

HOME_ENV = "CNNLAB_HOME"
log = logging.getLogger("cnnlab.weights")


def cache_dir() -> Path:
    """``$CNNLAB_HOME/weights`` if set, else ``$XDG_CACHE_HOME/cnnlab/weights`` (``~/.cache/...``)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "weights"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "cnnlab" / "weights"


def cached_path(w: Weights, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or cache_dir()) / w.file_name


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _matches(w: Weights, sha256: str) -> bool:
    if w.sha256:
        return sha256 == w.sha256
    return sha256.startswith(w.sha256_prefix or "")


def _expected(w: Weights) -> str:
    return w.sha256 if w.sha256 else f"a SHA-256 starting with {w.sha256_prefix}"


def _sha256(path: Path) -> str:
    from cnnlab.data.download import file_digest

    return file_digest(path, "sha256")


def _write_record(path: Path, w: Weights, sha256: str) -> None:
    st = path.stat()
    record = {"file": path.name, "url": w.url, "sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    tmp = _record_path(path).with_name(f".{path.name}.sha256.tmp-{os.getpid()}")  # ranks may write at once
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, _record_path(path))


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_cached(w: Weights, folder: str | os.PathLike | None = None) -> bool:
    """Whether the file is in the cache with a record that vouches for it (no hashing)."""
    path = cached_path(w, folder)
    return path.exists() and _cheap_ok(path, w)


def _cheap_ok(path: Path, w: Weights) -> bool:
    record = _read_record(path)
    if record is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return (record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns
            and isinstance(record.get("sha256"), str) and _matches(w, record["sha256"])
            and (w.size_bytes is None or st.st_size == w.size_bytes))


def verify_cached(w: Weights, folder: str | os.PathLike | None = None, *, full: bool = False) -> str:
    """Check the cached file of ``w``: "ok" (cheap check, or full hash when ``full`` or
    when the file changed since its record), "missing", or "deleted" (it no longer
    matched its checksum and was removed, with a warning)."""
    path = cached_path(w, folder)
    if not path.exists():
        return "missing"
    if not full and _cheap_ok(path, w):
        return "ok"
    digest = _sha256(path)
    if _matches(w, digest) and (w.size_bytes is None or path.stat().st_size == w.size_bytes):
        _write_record(path, w, digest)
        return "ok"
    path.unlink(missing_ok=True)
    _record_path(path).unlink(missing_ok=True)
    log.warning("cnnlab: the cached weights %s did not match their checksum (sha256 %s, expected %s); "
                "the file was deleted", path, digest, _expected(w))
    return "deleted"


def fetch_weights(w: Weights, folder: str | os.PathLike | None = None, *, download: bool = True,
                  verify: bool = False, timeout: float = 60.0, progress: bool = True) -> Path:
    """The path of ``w``'s file in the cache, downloading it if needed.

    ``verify=True`` hashes the cached file in full instead of trusting its record.
    Raises :class:`WeightsError` naming the URL and the exact path to place the file at
    when it cannot be downloaded.
    """
    from cnnlab.data.core import DataError
    from cnnlab.data.download import RemoteFile, download_file

    folder = Path(folder or cache_dir())
    path = cached_path(w, folder)
    state = verify_cached(w, folder, full=verify)
    if state == "ok":
        return path
    how = (f"Download it elsewhere and place it, unchanged, at\n  {path}\n"
           f"(set ${HOME_ENV} to choose the folder: the file goes in $CNNLAB_HOME/weights/).")
    if not download:
        raise WeightsError(f"{w.name}: the weights are not in the cache and downloading is off.\n"
                           f"URL: {w.url}\n{how}")
    spec = RemoteFile(w.file_name, (w.url,), sha256=w.sha256, size=w.size_bytes, sha256_prefix=w.sha256_prefix)
    try:
        download_file(spec, folder, timeout=timeout, progress=progress)
    except (DataError, urllib.error.URLError, OSError) as exc:
        part = folder / (w.file_name + ".part")
        kept = (f"\nThe partial download {part} is kept; the next attempt resumes it."
                if part.exists() else "")
        raise WeightsError(f"{w.name}: could not download the weights.\n{_first_lines(exc)}\n"
                           f"URL: {w.url}\n{how}{kept}") from None
    _write_record(path, w, _sha256(path))
    return path


def _first_lines(exc: Exception) -> str:
    text = str(exc).strip()
    # the downloader's own advice names the folder; ours names the exact file instead
    return "\n".join(line for line in text.splitlines() if "partial file" not in line)
