"""Console entry points for the Hydra apps other than `jaxdl-train` (`jaxdl-gan`, `jaxdl-autoencoder`)."""

from __future__ import annotations

import sys
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from jaxdl.config import CONF_DIR, check_group_overrides
from jaxdl.errors import report_user_errors


def hydra_app(config_name: str, run: Callable[[DictConfig, str], Any]) -> Callable[[], None]:
    """`main()` that checks group overrides, composes `conf/<config_name>.yaml` and calls `run(cfg, run_dir)`."""

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def hydra_main(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        report_user_errors(run)(cfg, HydraConfig.get().runtime.output_dir)

    @report_user_errors
    def main() -> None:
        check_group_overrides(sys.argv[1:])
        hydra_main()

    return main
