"""The command-line apps over the core: train, gan, gan_sample, autoencoder, features, compare.

Every Hydra app is made by `hydra_app`, which checks group overrides before Hydra sees
them, configures logging once (third-party INFO chatter off unless `hydra.verbose`
or `log_level` asks for it) and turns user errors into one line and exit code 2.
"""

from __future__ import annotations

from jaxdl.interrupt import INSTALLED  # noqa: F401 - first, before Hydra and JAX load: Ctrl-C is one line, exit 130
import logging
import os
import sys
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from jaxdl.config import CONF_DIR, check_group_overrides, register_resolvers
from jaxdl.errors import ConfigError, JaxdlError, report_user_errors
from jaxdl.logs import hold_file_lines
from jaxdl.cpu_devices import use_cpu_devices
from jaxdl.validate import check_output_dir, check_resolvable, check_settings

# Libraries that log every file they write (Orbax via absl) or every backend they probe (JAX).
NOISY_LOGGERS = ("absl", "jax._src.xla_bridge", "jax._src.distributed", "orbax", "tensorflow", "numba")


def configure_logging(cfg: DictConfig) -> None:
    """Quiet third-party loggers unless the user asked for detail (`hydra.verbose=true` or `log_level=DEBUG`)."""
    level = str(cfg.get("log_level") or (cfg.get("trainer") or {}).get("log_level") or "ERROR").upper()
    for name in NOISY_LOGGERS:
        if not logging.getLogger(name).isEnabledFor(logging.DEBUG):  # hydra.verbose sets DEBUG: leave it
            logging.getLogger(name).setLevel(level)


def set_cpu_devices(cfg: DictConfig) -> None:
    """One XLA device per CPU core for a single-process run (`trainer.cpu_devices`, default auto)."""
    t = cfg.get("trainer") or {}
    if str(t.get("distributed", "false")) != "false" and (
        t.get("coordinator_address") or os.environ.get("SLURM_NTASKS", "1") != "1"
    ):
        return  # one process per device already
    batch_sizes = tuple(int(b) for b in (t.get("batch_size"), t.get("eval_batch_size")) if isinstance(b, int))
    count = use_cpu_devices(t.get("cpu_devices", "auto"), batch_sizes)
    if count is not None and count > 1:
        logging.getLogger("jaxdl").info(
            "CPU: %d XLA devices, one per core (trainer.cpu_devices=%s)", count, t.get("cpu_devices", "auto")
        )


def require_path(argv: list[str], key: str, usage: str) -> None:
    """`key=PATH` must be on the command line and be a directory (every model format is one), checked before
    Hydra creates any output directory."""
    if any(a.startswith(("-h", "--help", "--cfg", "--info", "hydra.")) and "=" not in a for a in argv):
        return
    given = [a.split("=", 1)[1] for a in argv if a.startswith(f"{key}=")]
    if not given or not given[-1]:
        raise ConfigError(f"{key} is required: {usage}")
    if not os.path.exists(os.path.expanduser(given[-1])):
        raise ConfigError(f"{key}={given[-1]} does not exist; {usage}")
    if not os.path.isdir(os.path.expanduser(given[-1])):
        raise ConfigError(f"{key}={given[-1]} is a file, not a directory; {usage}")


def _given(argv: list[str], key: str) -> str | None:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"{key}=")]
    return values[-1] if values and values[-1] else None


def check_output_dirs(argv: list[str]) -> bool:
    """`hydra.run.dir` / `hydra.sweep.dir` can be created; returns whether the run directory is new."""
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        if _given(argv, key):
            check_output_dir(_given(argv, key), key)
    given = _given(argv, "hydra.run.dir")
    return given is None or not os.path.exists(os.path.expanduser(given))


def check_before_run(cfg: DictConfig, output_dir: str, new_dir: bool) -> None:
    """A single run refuses a bad setting before anything is written: the directory Hydra just made for it
    is removed again when it is new and still empty. (In a sweep the job records its own failure.)"""
    try:
        check_resolvable(cfg)
        check_settings(cfg)
    except JaxdlError:
        if new_dir and os.path.isdir(output_dir) and not os.listdir(output_dir):
            os.rmdir(output_dir)
        raise


def hydra_app(
    config_name: str, run: Callable[[DictConfig, str], Any], check: Callable[[list[str]], None] | None = None
) -> Callable[[], None]:
    """`main()` that checks overrides, composes `conf/<config_name>.yaml` and calls `run(cfg, output_dir)`.

    `run`'s return value goes back to Hydra (a sweep's objective); `check` sees argv first."""

    new_dir = [True]

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def hydra_main(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        output_dir = HydraConfig.get().runtime.output_dir
        if HydraConfig.get().mode == RunMode.RUN:
            report_user_errors(check_before_run)(cfg, output_dir, new_dir[0])
        hold_file_lines()  # the run's log file is written once its directory is the app's (jaxdl/logs.py)
        configure_logging(cfg)
        report_user_errors(set_cpu_devices)(cfg)
        return report_user_errors(run)(cfg, output_dir)

    @report_user_errors
    def main() -> None:
        register_resolvers()
        check_group_overrides(sys.argv[1:])
        new_dir[0] = check_output_dirs(sys.argv[1:])
        if check is not None:
            check(sys.argv[1:])
        hydra_main()

    return main
