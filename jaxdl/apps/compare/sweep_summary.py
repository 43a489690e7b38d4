"""A Hydra callback: when a sweep ends, write its comparison into the sweep directory and name the failed jobs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("jaxdl")


class SweepSummary(Callback):
    """comparison.{md,csv,html} in `hydra.sweep.dir`; each failed job and its error in the log."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from jaxdl.apps.compare.app import default_sort
        from jaxdl.apps.compare.records import find_runs, optuna_best
        from jaxdl.apps.compare.report import failures, top_lines, write_reports
        from jaxdl.errors import JaxdlError

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            records = find_runs([sweep_dir])
        except JaxdlError as err:
            log.warning("no sweep summary: %s", err)
            return
        sort_by = default_sort(records)
        paths = write_reports(records, sweep_dir, sort_by, optuna_best([sweep_dir]))
        failed = failures(records)
        log.info("sweep summary: %d runs, %d failed; %s", len(records), len(failed), paths["markdown"])
        for line in top_lines(records, sort_by, 3):
            log.info(line)
        for line in failed:
            log.error("failed job %s", line)
