"""`status.json` of a run: running, completed or failed (with its error), attempts and wall time.

A job killed outright (preempted, out of memory) leaves `running` behind; the next
attempt in the same directory resumes from its checkpoint and updates the file.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
STATES = ("running", "completed", "failed")


def read_status(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_status(run_dir: str | Path, status: str, **fields: Any) -> dict[str, Any]:
    """Replace the status file atomically (readers never see half a file)."""
    assert status in STATES, status
    record = {"status": status, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
    path = Path(run_dir) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(path)
    except OSError as err:  # a full disk: keep the old file whole, leave no half-written one behind
        tmp.unlink(missing_ok=True)
        logging.getLogger("jaxdl").error("could not write %s (%s)", path, err)
    return record
