"""User-facing errors: one line that says what was wrong and how to fix it.

Anything raised as a `JaxdlError` is reported by the command-line apps as a single
`error: ...` line with a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C


class JaxdlError(Exception):
    """Base class of errors caused by input (config, data, checkpoints), not by bugs."""


class ConfigError(JaxdlError):
    """A config value is unknown or inconsistent."""


class DataError(JaxdlError):
    """A data set is missing, truncated or malformed."""


class CheckpointError(JaxdlError):
    """A checkpoint is missing, damaged or does not match the model."""


class RunRefused(CheckpointError):
    """A run directory this command must not touch: locked by another process, holding an earlier run,
    or with checkpoints that do not fit the configured model."""


class TrainingDiverged(JaxdlError):
    """The loss became NaN or infinite."""


def unknown_name(kind: str, name: str, valid: list[str]) -> ConfigError:
    """The one-line error for a name that is not among the valid ones."""
    return ConfigError(f"unknown {kind} '{name}'; valid names: {', '.join(sorted(valid))}")


def report_user_errors(fn: F) -> F:
    """Turn a `JaxdlError` escaping `fn` into one `error:` line and exit code 2; Ctrl-C into one line too."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except JaxdlError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("interrupted; checkpoints written so far are kept: run the same command to resume", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]
