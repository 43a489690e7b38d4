"""Ctrl-C in a command-line app: one line and exit code 130 at any moment, never swallowed, never a crash.

Python raises KeyboardInterrupt in the main thread at the next bytecode, and there it can be lost: inside a
garbage-collector callback (JAX registers one) it is printed as "ignored" and the app trains on; inside
JAX's start-up or a compile it waits for the C++ call to return; and exiting with XLA's threads half
started has ended in a segfault. So the apps install this handler before Hydra and JAX load:

- before a run directory is open (start-up, and apps that own none) Ctrl-C exits at once: one line, exit
  130, nothing to clean up. The signal also wakes a watcher thread (`signal.set_wakeup_fd`), which exits
  even while the main thread is inside a C++ call;
- while a run directory is open (`running()`, from jaxdl/watchdog.py) it raises KeyboardInterrupt as
  usual, so the run records that it stopped and its lock is released; the request is also kept as a flag
  that the training loop checks (`raise_if_requested`), so an interrupt lost in a callback still stops it;
  a second Ctrl-C exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from jaxdl.errors import EXIT_INTERRUPTED

MESSAGE = b"interrupted; run the same command again (a run resumes from its last checkpoint)\n"

_requested = threading.Event()
_exiting = threading.Lock()
_run_open = False
_handled = 0  # Ctrl-Cs the main thread's handler has seen (the watcher acts only on the others)


def _exit_now() -> None:
    if _exiting.acquire(blocking=False):  # the handler and the watcher may both get here: one line
        os.write(2, MESSAGE)
        os._exit(EXIT_INTERRUPTED)


def _handler(signum, frame) -> None:
    global _handled
    _handled += 1
    _requested.set()
    if _run_open:
        raise KeyboardInterrupt
    _exit_now()


def _watch(fd: int) -> None:
    presses = 0
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        presses += data.count(signal.SIGINT)
        # The main thread may be stuck in a C++ call (start-up, XLA): exit for it, unless its handler already
        # turned this Ctrl-C into the run's KeyboardInterrupt (the run may have closed since: not a new press).
        # A second Ctrl-C ends even a run stuck inside XLA.
        if presses >= 2 or (presses > _handled and not _run_open):
            _requested.set()
            _exit_now()


def install() -> bool:
    """Take over Ctrl-C for a command-line app; whether it was installed.

    Only from the main thread of a process launched as an app (a `jaxdl-*` script, or `python -m` of a jaxdl
    or xai module), and only over Python's default handler: a program that set its own, or imports the apps
    (tests), keeps it."""
    if not _launched_as_app() or threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return False
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.signal(signal.SIGINT, _handler)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read,), name="jaxdl-interrupt", daemon=True).start()
    return True


def _launched_as_app() -> bool:
    if not sys.argv:
        return False
    if sys.argv[0] == "-m" or os.path.basename(sys.argv[0]).startswith("jaxdl-"):  # "-m": runpy still imports
        return True
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name.split(".")[0] in ("jaxdl", "xai")


def running(open_: bool) -> None:
    """A run directory is open (True) or closed again: Ctrl-C now stops the run where it stands."""
    global _run_open
    _run_open = open_


def raise_if_requested() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that was swallowed on its way (a GC callback)."""
    if _requested.is_set():
        raise KeyboardInterrupt


# Importing this module from an app's entry module installs the handler as early as possible (see install).
INSTALLED = install()
