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
from jaxdl.errors import ConfigError, report_user_errors
from jaxdl.logs import hold_file_lines
from jaxdl.cpu_devices import use_cpu_devices

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
    """`key=PATH` must be on the command line and exist, checked before Hydra creates any output directory."""
    if any(a.startswith(("-h", "--help", "--cfg", "--info", "hydra.")) and "=" not in a for a in argv):
        return
    given = [a.split("=", 1)[1] for a in argv if a.startswith(f"{key}=")]
    if not given or not given[-1]:
        raise ConfigError(f"{key} is required: {usage}")
    if not os.path.exists(os.path.expanduser(given[-1])):
        raise ConfigError(f"{key}={given[-1]} does not exist; {usage}")


def hydra_app(
    config_name: str, run: Callable[[DictConfig, str], Any], check: Callable[[list[str]], None] | None = None
) -> Callable[[], None]:
    """`main()` that checks overrides, composes `conf/<config_name>.yaml` and calls `run(cfg, output_dir)`.

    `run`'s return value goes back to Hydra (a sweep's objective); `check` sees argv first."""

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def hydra_main(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        hold_file_lines()  # the run's log file is written once its directory is the app's (jaxdl/logs.py)
        configure_logging(cfg)
        report_user_errors(set_cpu_devices)(cfg)
        return report_user_errors(run)(cfg, HydraConfig.get().runtime.output_dir)

    @report_user_errors
    def main() -> None:
        register_resolvers()
        check_group_overrides(sys.argv[1:])
        if check is not None:
            check(sys.argv[1:])
        hydra_main()

    return main
