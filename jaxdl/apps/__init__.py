"""The command-line apps over the core: train, gan, gan_sample, autoencoder, features, compare.

Every Hydra app is made by `hydra_app`, which checks group overrides before Hydra sees
them, configures logging once (third-party INFO chatter off unless `hydra.verbose`
or `log_level` asks for it) and turns user errors into one line and exit code 2.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from jaxdl.config import CONF_DIR, check_group_overrides
from jaxdl.errors import report_user_errors

# Libraries that log every file they write (Orbax via absl) or every backend they probe (JAX).
NOISY_LOGGERS = ("absl", "jax._src.xla_bridge", "jax._src.distributed", "orbax", "tensorflow", "numba")


def configure_logging(cfg: DictConfig) -> None:
    """Quiet third-party loggers unless the user asked for detail (`hydra.verbose=true` or `log_level=DEBUG`)."""
    level = str(cfg.get("log_level") or (cfg.get("trainer") or {}).get("log_level") or "WARNING").upper()
    for name in NOISY_LOGGERS:
        if not logging.getLogger(name).isEnabledFor(logging.DEBUG):  # hydra.verbose sets DEBUG: leave it
            logging.getLogger(name).setLevel(level)


def hydra_app(config_name: str, run: Callable[[DictConfig, str], Any], check: Callable[[list[str]], None] | None = None
              ) -> Callable[[], None]:
    """`main()` that checks overrides, composes `conf/<config_name>.yaml` and calls `run(cfg, output_dir)`.

    `run`'s return value goes back to Hydra (a sweep's objective); `check` sees argv first."""

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def hydra_main(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        configure_logging(cfg)
        return report_user_errors(run)(cfg, HydraConfig.get().runtime.output_dir)

    @report_user_errors
    def main() -> None:
        check_group_overrides(sys.argv[1:])
        if check is not None:
            check(sys.argv[1:])
        hydra_main()

    return main
