"""Where an app's log lines go: the console at once, the run directory's log file once the run is the app's.

Lines logged before a run directory has passed its checks (lock, resume) are held in memory
and written to the file only when it has: a refused run leaves the directory's files as they
were. Process 0 writes `run.log`; process i of a multi-host run writes `run.rank<i>.log`.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FILE = "run.log"
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
_HELD_LINES = 100_000


class _Held(logging.handlers.MemoryHandler):
    """Keeps records until `write_to` names their file (never flushes by itself)."""

    def shouldFlush(self, record: logging.LogRecord) -> bool:  # noqa: N802 - logging's API
        return len(self.buffer) >= self.capacity and self.target is not None


def log_file_name(process_index: int = 0) -> str:
    return LOG_FILE if process_index == 0 else f"run.rank{process_index}.log"


def hold_file_lines() -> None:
    """From now on, keep log records for the run's file (called by the apps before any work)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, (_Held, logging.FileHandler))]:
        root.removeHandler(handler)
        handler.close()
    root.addHandler(_Held(_HELD_LINES))


def write_to(directory: str | Path, process_index: int = 0) -> Path:
    """Send held and future log records to this process's log file in `directory`."""
    root = logging.getLogger()
    path = Path(directory) / log_file_name(process_index)
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    for handler in [h for h in root.handlers if isinstance(h, (_Held, logging.FileHandler))]:
        if isinstance(handler, _Held):
            for record in handler.buffer:
                file_handler.handle(record)
            handler.buffer.clear()
        root.removeHandler(handler)
        handler.close()
    root.addHandler(file_handler)
    return path
