"""Where an app's log lines go: the console at once, the run directory's log file once the run is the app's.

Lines logged before a run directory has passed its checks (lock, resume) are held in memory
and written to the file only when it has: a refused run leaves the directory's files as they
were. Process 0 writes `run.log`; process i of a multi-host run writes `run.rank<i>.log`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import sys
import threading
from pathlib import Path

LOG_FILE = "run.log"
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
_HELD_LINES = 100_000
THREADS = "jaxdl.threads"  # where `to_file_only` logs what library threads raise


class _Held(logging.handlers.MemoryHandler):
    """Keeps records until `write_to` names their file (never flushes by itself)."""

    def shouldFlush(self, record: logging.LogRecord) -> bool:  # noqa: N802 - logging's API
        return len(self.buffer) >= self.capacity and self.target is not None


class _RunLog(logging.FileHandler):
    """The run's log file. A record it cannot take (the disk is full) is dropped: logging would print a
    'Logging error' traceback on the terminal, and the full disk is already reported in one error line."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's API
        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)


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
    file_handler = _RunLog(path)
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


class _LineLogger(io.TextIOBase):
    """A text stream whose lines become log records."""

    def __init__(self, logger: logging.Logger):
        self.logger, self.pending, self.writing = logger, "", False

    def write(self, text: str) -> int:
        if self.writing:  # the log file itself failed (a full disk) and logging reports that here: drop it
            return len(text)
        *lines, self.pending = (self.pending + text).split("\n")
        self.writing = True
        try:
            for line in lines:
                self.logger.error("%s", line)
        finally:
            self.writing = False
        return len(text)


def _file_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, (_Held, logging.FileHandler))]


def file_only_from_now(*loggers: str) -> None:
    """These loggers write to the run's log file only for the rest of the process: after a failed checkpoint
    save, asyncio logs each of Orbax's failed tasks ('Task exception was never retrieved') whenever the task is
    garbage-collected, which can be after the save has returned its one-line error."""
    files = _file_handlers()
    for name in loggers if files else ():
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = list(files), False


@contextlib.contextmanager
def to_file_only(*loggers: str):
    """Records of these libraries' loggers, and exceptions their threads raise, go to the run's log file only:
    a failure they cause (a full disk under Orbax) is reported to the user in one line by jaxdl, while the
    file keeps their tracebacks for whoever looks into it."""
    files = _file_handlers()
    if not files:  # used as a library, outside an app: the caller's logging configuration decides
        yield
        return
    saved = []
    for name in (*loggers, THREADS):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = list(files), False
    previous_hook = threading.excepthook
    threads = logging.getLogger(THREADS)
    threading.excepthook = lambda args: threads.error(
        "thread %s raised", args.thread and args.thread.name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )
    try:
        with contextlib.redirect_stderr(_LineLogger(threads)):  # tracebacks native code prints (PyErr_Print)
            yield
    finally:
        threading.excepthook = previous_hook
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
