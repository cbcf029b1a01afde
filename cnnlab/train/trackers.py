"""Where metrics go: ``metrics.jsonl`` always, TensorBoard and Weights & Biases on request.

Every tracker takes records (flat dicts of numbers; per-epoch records carry
``"epoch"``, per-step records ``"step"``) and is closed at the end of the run.
W&B runs offline (``WANDB_MODE=offline``) unless credentials are configured, so a
run never blocks on a login prompt or the network.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["TRACKERS", "Tracker", "JsonlTracker", "TensorBoardTracker", "WandbTracker", "make_trackers"]

TRACKERS = ("jsonl", "tensorboard", "wandb")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep the record readable by strict parsers
    return value


class Tracker:
    def log(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonlTracker(Tracker):
    """One JSON object per line in ``metrics.jsonl``, flushed after each record.

    Opening a file that a killed run left behind first repairs it: a last line cut off
    mid-record is dropped, and with ``resume_epoch`` every record logged after that
    epoch's checkpoint (epochs the resumed run will train again, a results record) is
    dropped, so no record appears twice.
    """

    FILE = "metrics.jsonl"

    def __init__(self, out: Path, resume_epoch: int | None = None) -> None:
        self.path = Path(out) / self.FILE
        if self.path.exists():
            self._repair(resume_epoch)
        self.file = open(self.path, "a", encoding="utf-8")

    def _repair(self, resume_epoch: int | None) -> None:
        text = self.path.read_text(encoding="utf-8", errors="replace")
        kept = []
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # cut off mid-write
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if resume_epoch is not None and isinstance(record, dict) and self._dropped_on_resume(record, resume_epoch):
                continue
            kept.append(line)
        repaired = "".join(kept)
        if repaired != text:
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            tmp.write_text(repaired, encoding="utf-8")
            os.replace(tmp, self.path)

    @staticmethod
    def _dropped_on_resume(record: dict[str, Any], resume_epoch: int) -> bool:
        """Whether a record of the file a resumed run reopens goes (it will be logged again)."""
        epoch = record.get("epoch")
        return record.get("kind") == "results" or (record.get("kind") in ("epoch", "diverged")
                                                   and isinstance(epoch, int) and epoch > resume_epoch)

    def log(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps({k: _json_safe(v) for k, v in record.items()}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _scalars(record: dict[str, Any]) -> tuple[int, dict[str, float]]:
    step = int(record["epoch"] if "epoch" in record else record.get("step", 0))  # x-axis: epochs
    scalars = {k: float(v) for k, v in record.items()
               if k not in ("step", "epoch", "kind") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    prefix = record.get("kind", "")
    return step, {f"{prefix}/{k}" if prefix else k: v for k, v in scalars.items()}


class TensorBoardTracker(Tracker):
    """Scalars in ``tb/`` under the run directory (``tensorboard --logdir RUN/tb``)."""

    def __init__(self, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError("--tracker tensorboard needs the tensorboard package: pip install tensorboard") from exc
        self.writer = SummaryWriter(log_dir=str(Path(out) / "tb"))

    def log(self, record: dict[str, Any]) -> None:
        step, scalars = _scalars(record)
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def _wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    try:
        return netrc.exists() and "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandbTracker(Tracker):
    """A W&B run in ``wandb/`` under the run directory; offline without credentials."""

    def __init__(self, out: Path, config: dict[str, Any], name: str | None = None) -> None:
        try:
            import wandb
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError("--tracker wandb needs the wandb package: pip install wandb") from exc
        mode = os.environ.get("WANDB_MODE") or ("online" if _wandb_has_credentials() else "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "cnnlab"), dir=str(out), config=config,
                              name=name, mode=mode, reinit=True)
        self.mode = mode

    def log(self, record: dict[str, Any]) -> None:
        step, scalars = _scalars(record)
        self.run.log({**scalars, "epoch": step})

    def close(self) -> None:
        self.run.finish()


def make_trackers(names: list[str] | tuple[str, ...], out: Path, config: dict[str, Any], run_name: str | None = None,
                  resume_epoch: int | None = None) -> list[Tracker]:
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"unknown tracker(s) {', '.join(unknown)}; choose from {', '.join(TRACKERS)}")
    trackers: list[Tracker] = [JsonlTracker(out, resume_epoch)]
    if "tensorboard" in names:
        trackers.append(TensorBoardTracker(out))
    if "wandb" in names:
        trackers.append(WandbTracker(out, config, run_name))
    return trackers
