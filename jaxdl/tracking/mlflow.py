"""MLflow, the main tracker: one MLflow run per jaxdl run, a sweep's runs children of one parent run.

Where the runs go, first match wins: `trainer.tracking.mlflow_uri`; `MLFLOW_TRACKING_URI` or
`mlflow.set_tracking_uri(...)` (a server); else an embedded SQLite store beside the runs,
`sqlite:///<sweep or run dir>/mlflow.db` with artifacts in `mlartifacts/` (`mlflow ui --backend-store-uri`
that URI shows them). The run id is kept in `trackers.json`, so a resumed run continues the same MLflow run.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Mapping

from jaxdl.tracking.base import RunContext, require

# MLflow retries a failed HTTP request 7 times with backoff (minutes against a server that went down);
# a tracker must not hold training up that long. A user's own settings of these win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
PARAMS_PER_CALL = 100  # MLflow's limit on the params of one log_batch
SWEEP_TAG = "jaxdl.sweep_dir"


def tracking_uri(ctx: RunContext) -> tuple[str, Path | None]:
    """(tracking URI, local artifact root or None) for this run."""
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    import mlflow

    configured = (ctx.cfg.trainer.get("tracking") or {}).get("mlflow_uri")
    if configured:
        return str(configured), None
    if is_tracking_uri_set():
        return mlflow.get_tracking_uri(), None
    home = ctx.sweep_dir or ctx.run_dir
    return f"sqlite:///{home.absolute()}/mlflow.db", home.absolute() / "mlartifacts"


class MLflowTracker:
    name = "mlflow"

    def __init__(self, ctx: RunContext, resume_step: int):
        require("mlflow")
        from mlflow.tracking import MlflowClient

        _bounded_http()
        for name in ("mlflow", "alembic"):  # database migrations logged at INFO on MLflow's own handler
            if not logging.getLogger(name).isEnabledFor(logging.DEBUG):  # unless the user asked for detail
                logging.getLogger(name).setLevel(logging.WARNING)
        uri, artifacts = tracking_uri(ctx)
        self.client = MlflowClient(uri)
        state = ctx.state
        if state.get("run_id") and state.get("tracking_uri") == uri:
            self.run_id = state["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(ctx.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment
            else self.client.create_experiment(ctx.experiment, artifact_location=artifacts.as_uri() if artifacts else None)
        )
        tags = dict(ctx.tags)
        if ctx.sweep_dir is not None:
            tags["mlflow.parentRunId"] = self._parent_run(experiment_id, ctx.sweep_dir)
        self.run_id = self.client.create_run(experiment_id, run_name=ctx.run_name, tags=tags).info.run_id
        state.update(run_id=self.run_id, tracking_uri=uri)
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in ctx.params.items()]
        for start in range(0, len(params), PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[start : start + PARAMS_PER_CALL])

    def _parent_run(self, experiment_id: str, sweep_dir: Path) -> str:
        """The sweep's parent run, created by its first job."""
        where = str(sweep_dir.absolute()).replace("'", "\\'")
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{SWEEP_TAG}` = '{where}'", max_results=1)
        if found:
            return found[0].info.run_id
        parent = self.client.create_run(experiment_id, run_name=sweep_dir.name, tags={SWEEP_TAG: where, **_sweep_tags()})
        self.client.set_terminated(parent.info.run_id)
        return parent.info.run_id

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_images(self, step: int, images: Mapping[str, Path]) -> None:
        for name, path in images.items():
            self.client.log_artifact(self.run_id, str(path), str(Path("images", name).parent))

    def log_artifacts(self, paths: Mapping[str, Path]) -> None:
        _log_files(self.client, self.run_id, paths)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def _sweep_tags() -> dict[str, str]:
    from jaxdl.tracking.base import run_tags

    return {k: v for k, v in run_tags().items() if k != "slurm_array_task"}


def attach(entry: Mapping[str, str], paths: Mapping[str, Path]) -> None:
    """Log `paths` (artifact name -> file) to the finished MLflow run `entry` (a `trackers.json` entry) names."""
    from mlflow.tracking import MlflowClient

    _bounded_http()
    _log_files(MlflowClient(entry["tracking_uri"]), entry["run_id"], paths)


def _bounded_http() -> None:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _log_files(client, run_id: str, paths: Mapping[str, Path]) -> None:
    """Each file or directory under its artifact name (`eval`, `explain/report.html`)."""
    for name, path in paths.items():
        if Path(path).is_dir():
            client.log_artifacts(run_id, str(path), name)
        else:
            parent = str(Path(name).parent)
            client.log_artifact(run_id, str(path), None if parent == "." else parent)
