"""Downloads that resume, check their checksums and never leave a half-written file.

A file is fetched into ``NAME.part`` next to its destination. If a ``.part`` file is
already there (an interrupted download), the request asks for the remaining bytes
with an HTTP ``Range`` header and appends them when the server answers 206; a server
that ignores ranges (200) restarts the file. When the bytes are complete their
checksums (SHA-256 and/or MD5) are checked; only then is the file renamed into place
with ``os.replace`` (atomic on one file system). A file that fails its checksum is
deleted, and the next mirror (if any) is tried.
"""
from __future__ import annotations

import hashlib
import os
import contextlib
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from cnnlab.data.core import DataError

__all__ = ["RemoteFile", "download_file", "file_digest", "verify_file", "missing_files_message"]

_CHUNK = 1 << 20
USER_AGENT = "cnnlab-data/0.1 (+https://github.com/; python urllib)"


@dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset: its name, where it can be fetched, and how to check it."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes, when known
    # the leading hex digits of the SHA-256, as torch.hub file names carry them ("resnet18-f37072fd.pth")
    sha256_prefix: str | None = None

    def __post_init__(self) -> None:
        if not (self.md5 or self.sha256 or self.sha256_prefix):
            raise ValueError(f"{self.name}: a remote file needs at least one checksum")
        # a malformed checksum would fail every download (or, as a short prefix, check next to nothing)
        for field, digits in (("md5", "32"), ("sha256", "64"), ("sha256_prefix", "6,64")):
            value = getattr(self, field)
            if value and not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", value):
                raise ValueError(f"{self.name}: {field} must be {digits.replace(',', '-')} hex digits, got {value!r}")


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, spec: RemoteFile) -> str | None:
    """None when ``path`` matches every checksum of ``spec``, else what is wrong."""
    for algorithm, expected in (("sha256", spec.sha256), ("md5", spec.md5)):
        if expected:
            got = file_digest(path, algorithm)
            if got.lower() != expected.lower():
                return f"{algorithm} is {got}, expected {expected}"
    if spec.sha256_prefix and not spec.sha256:
        got = file_digest(path, "sha256")
        if not got.startswith(spec.sha256_prefix.lower()):
            return f"sha256 is {got}, expected it to start with {spec.sha256_prefix}"
    return None


def missing_files_message(dataset: str, folder: Path, files: Sequence[RemoteFile], reason: str = "") -> str:
    lines = [f"{dataset}: {reason}" if reason else f"{dataset}: files are missing."]
    lines.append(f"Place these files (unchanged, still compressed) in {folder}/ :")
    for f in files:
        lines.append(f"  {f.name}    from {f.urls[0]}" + (f"  (md5 {f.md5})" if f.md5 else ""))
    lines.append(f"or run `cnnlab download {dataset}` with internet access (set --data-dir or $CNNLAB_DATA to choose the folder).")
    return "\n".join(lines)


def _fetch(url: str, part: Path, expected_size: int | None, progress: Callable[[int, int | None], None] | None, timeout: float) -> None:
    """Append the missing bytes of ``url`` to ``part`` (creating it if needed)."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have > expected_size:
        part.unlink()
        have = 0
    if expected_size is not None and have == expected_size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range not satisfiable: we may already have it all
            return
        raise
    with response:
        status = getattr(response, "status", 200)
        mode = "ab" if (have and status == 206) else "wb"
        if mode == "wb":
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else expected_size
        with open(part, mode) as out:
            done = have
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
    if length is not None and done < total:  # the server closed the connection early: keep the bytes, resume later
        raise ConnectionError(f"the connection closed after {done:,} of {total:,} bytes")


def _bar(name: str) -> Callable[[int, int | None], None] | None:
    if not sys.stderr.isatty():
        return None
    state = {"last": -1}

    def show(done: int, total: int | None) -> None:
        pct = int(100 * done / total) if total else -1
        if pct != state["last"]:
            state["last"] = pct
            text = f"{pct:3d}%" if total else f"{done / 1e6:.1f} MB"
            print(f"\r  {name}: {text}", end="" if pct < 100 else "\n", file=sys.stderr, flush=True)

    return show


def download_file(spec: RemoteFile, folder: str | os.PathLike, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Make sure ``folder/spec.name`` exists with the right checksum; fetch it if not.

    Tries each URL of ``spec`` in turn. Raises :class:`DataError` naming the file,
    what went wrong at each URL, and where to place the file by hand.
    """
    folder = Path(folder)
    dest = folder / spec.name
    if dest.exists():
        problem = verify_file(dest, spec)
        if problem is None:
            return dest
        raise DataError(
            f"{dest} exists but does not match its checksum ({problem}); delete it and download again"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {folder}: {exc}") from exc
    with _exclusive(folder):
        if dest.exists():  # another process (a torchrun rank) fetched it meanwhile
            return download_file(spec, folder, timeout=timeout, progress=progress)
        return _download_locked(spec, folder, dest, timeout, progress)


@contextlib.contextmanager
def _exclusive(folder: Path):
    """Hold an exclusive lock on ``folder`` (POSIX flock on the directory), so that
    processes started together (torchrun ranks) download a file once."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):  # Windows, or a folder that cannot be opened
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _download_locked(spec: RemoteFile, folder: Path, dest: Path, timeout: float, progress: bool) -> Path:
    part = folder / (spec.name + ".part")
    failures = []
    for url in spec.urls:
        try:
            _fetch(url, part, spec.size, _bar(spec.name) if progress else None, timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"{url}: {reason}")
            continue
        problem = verify_file(part, spec)
        if problem is not None:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: checksum mismatch, {problem} (the download was deleted)")
            continue
        os.replace(part, dest)
        return dest
    kept = f"\n  (the partial file {part} is kept; the next attempt resumes it)" if part.exists() else ""
    raise DataError(f"could not download {spec.name} into {folder}/:\n  " + "\n  ".join(failures) + kept)
