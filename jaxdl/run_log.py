"""Metrics of a run as JSON lines (`metrics.jsonl`), and to the run's trackers (jaxdl/tracking/)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from jaxdl.tracking import Trackers

log = logging.getLogger("jaxdl")


class MetricsLog:
    """Append-only metric records: one per epoch, then one test record at the end.

    On (re)opening, records past the restored step and any earlier test record are dropped
    (a re-run or an extended run writes its own), and a torn last line of a killed writer is
    dropped with a warning.

    With `write_files=False` (processes other than 0 of a multi-host run) the records
    are kept in memory only.
    """

    def __init__(self, run_dir: Path, resume_step: int = 0, write_files: bool = True, trackers: Trackers | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.write_files = write_files
        self.records = [r for r in self._read() if r["step"] <= resume_step and not any(k.startswith("test/") for k in r)]
        self.trackers = trackers
        if write_files:
            tmp = self.path.with_suffix(".tmp")  # other processes may be reading it
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))
            tmp.replace(self.path)

    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                record = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                record = None
                log.warning("%s line %d is not a complete record (a write was cut off); dropping it", self.path, number)
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
        return records

    def write(self, step: int, **metrics: float) -> None:
        record = {"step": int(step), **{k: (float(v) if not isinstance(v, int) else v) for k, v in metrics.items()}}
        self.records.append(record)
        if not self.write_files:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.trackers is not None:
            self.trackers.log_metrics(int(step), metrics)
