"""Metrics of a run as JSON lines (`metrics.jsonl`) and TensorBoard event files (`tb/`)."""

from __future__ import annotations

import json
from pathlib import Path

from tensorboardX import SummaryWriter


class MetricsLog:
    """Append-only metric records; on resume, records past the restored step are dropped.

    With `write_files=False` (processes other than 0 of a multi-host run) the records
    are kept in memory only.
    """

    def __init__(self, run_dir: Path, resume_step: int = 0, write_files: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.write_files = write_files
        self.records = [r for r in self._read() if r["step"] <= resume_step]
        self.tensorboard = None
        if write_files:
            tmp = self.path.with_suffix(".tmp")  # other processes may be reading it
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))
            tmp.replace(self.path)
            self.tensorboard = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def write(self, step: int, **metrics: float) -> None:
        record = {"step": int(step), **{k: (float(v) if not isinstance(v, int) else v) for k, v in metrics.items()}}
        self.records.append(record)
        if not self.write_files:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            if "/" in key:
                self.tensorboard.add_scalar(key, float(value), int(step))
        self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
