"""What jaxdl adds to Hydra's submitit launchers (SLURM and local): no job can take a sweep down.

Hydra's own launchers wait on each job's result and raise `FailedJobError` when a job
died outside Python (cancelled, killed, out of memory, a node failure): the sweep stops,
and no comparison of the jobs that finished is written. Here such a job is recorded as
`failed` with SLURM's reason in its `status.json`, the sweep gets no objective for it
(as for a job that raised), and the sweep goes on. Without SLURM accounting (`sacct`
answers nothing) a job that left the queue without a result counts as ended, where
submitit alone would wait for it forever.

`tasks_per_node: null` (the default) runs one task per GPU of `gpus_per_node`, and one
task on a CPU partition, so neither needs GPU arithmetic in its config.

Hydra accepts launchers only from the `hydra_plugins` package: `hydra_plugins/jaxdl_launchers.py`
declares the two classes (`conf/hydra/launcher/{slurm,local}.yaml` name them) from these mixins.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf, open_dict

from jaxdl.run_status import read_status, write_status

log = logging.getLogger("jaxdl")

_POLL_S = (2.0, 30.0)  # from every 2 s, slowing with the sweep's age to every 30 s (each poll is one sacct)


def _python_error(err: BaseException) -> str | None:
    """The exception line of the traceback in submitit's `FailedJobError`, None for other errors."""
    if type(err).__name__ != "FailedJobError":
        return None
    trace = str(err).split("-" * 22)
    lines = [line.strip() for line in (trace[1] if len(trace) > 2 else str(err)).splitlines() if line.strip()]
    return lines[-1] if lines else None


def _result_arrives(job: Any, timeout_s: float = 15.0) -> bool:
    """Whether a job that left the queue still shows its result (a shared file system may lag).

    A job that never started (no log file: cancelled while pending) has none to show."""
    if not job.paths.stderr.exists() and not job.paths.stdout.exists():
        return False
    deadline = time.time() + timeout_s
    while not job.done():
        if time.time() > deadline:
            return False
        time.sleep(1)
    return True


class SweepSurvivesFailedJobs:
    """The `launch` of hydra-submitit-launcher, waiting on all jobs and recording those that died.

    Mixed into its `BaseSubmititLauncher` subclasses (they bring `params`, `config`, `hydra_context`)."""

    _EXECUTOR: str
    params: dict[str, Any]

    def executor(self) -> Any:
        """submitit's executor with the launcher's parameters (hydra-submitit-launcher's mapping)."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        params = dict(self.params)
        gpus = params.pop("gpus_per_node", None)
        if gpus:  # null or 0: no GPU request at all (a CPU partition rejects --gpus-per-node)
            params["gpus_per_node"] = gpus
        if params.get("tasks_per_node") is None:
            params["tasks_per_node"] = gpus or 1
        init_keys = {"submitit_folder", "max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=params["submitit_folder"],
            **{f"{self._EXECUTOR}_max_num_timeout": params.get("max_num_timeout", 0)},
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items() if k not in init_keys}
        )
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        executor = self.executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("submitit '%s' sweep output dir: %s", self._EXECUTOR, sweep_dir)
        singleton_state = Singleton.get_state()
        numbered = list(enumerate(job_overrides, initial_job_idx))
        for idx, overrides in numbered:
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        jobs = executor.map_array(
            self, *zip(*[(list(o), "hydra.sweep.dir", i, f"job_id_for_{i}", singleton_state) for i, o in numbered])
        )
        gone = self._wait(jobs)
        return [self._outcome(job, list(overrides), idx, gone) for job, (idx, overrides) in zip(jobs, numbered)]

    def _wait(self, jobs: list) -> set[str]:
        """Wait until every job is done or has left the queue; returns the ids of those that left it."""
        start, pending, gone = time.time(), list(jobs), set()
        while pending:
            pending[0].done(force_check=True)  # one status query (sacct) for all of them
            gone |= {job.job_id for job in pending if not job.done() and self._left_queue(job)}
            pending = [job for job in pending if job.job_id not in gone and not job.done()]
            if pending:
                time.sleep(min(_POLL_S[1], max(_POLL_S[0], (time.time() - start) / 10)))
        return gone

    def _left_queue(self, job: Any) -> bool:
        """Whether the cluster no longer knows the job while its state stays unknown (no accounting)."""
        return False

    def _outcome(self, job: Any, overrides: list[str], idx: int, gone: set[str]) -> JobReturn:
        if job.job_id in gone and not _result_arrives(job):
            reason = self._reason(job, None)  # job.results() would wait for it forever
        else:
            try:
                return job.results()[0]
            except Exception as err:  # noqa: BLE001 - FailedJobError, UncompletedJobError: recorded, never raised
                reason = self._reason(job, err)
        run_dir = self._run_dir(overrides, idx)
        self._record_failure(run_dir, overrides, reason)
        log.error("job #%d (%s) failed; the sweep goes on: %s", idx, run_dir, reason)
        return JobReturn(overrides=overrides, working_dir=str(run_dir), status=JobStatus.COMPLETED, _return_value=None)

    def _reason(self, job: Any, err: BaseException | None) -> str:
        return f"job {job.job_id}: {err and _python_error(err) or 'ended without a result (' + job.state + ')'}"

    def _run_dir(self, overrides: list[str], idx: int) -> Path:
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config.hydra.job):
            sweep_config.hydra.job.num = idx
        return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)

    @staticmethod
    def _record_failure(run_dir: Path, overrides: list[str], reason: str) -> None:
        """`failed` with the reason, keeping the attempts; the overrides too if the job never started."""
        previous = read_status(run_dir)
        kept = {k: previous[k] for k in ("attempt", "wall_s", "slurm_job", "slurm_restarts") if k in previous}
        write_status(run_dir, "failed", **kept, error=reason)
        hydra_overrides = run_dir / ".hydra" / "overrides.yaml"
        if not hydra_overrides.exists():
            hydra_overrides.parent.mkdir(parents=True, exist_ok=True)
            hydra_overrides.write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))


class SlurmQueue(SweepSurvivesFailedJobs):
    """SLURM's reasons (the job's state as accounting saw it), and jobs that left a queue without accounting."""

    def _reason(self, job: Any, err: BaseException | None) -> str:
        python, state = err and _python_error(err), job.state
        if python:
            return f"SLURM job {job.job_id}: {python}"
        if state == "UNKNOWN":
            return f"SLURM job {job.job_id} left the queue without a result (no accounting to say why)"
        return f"SLURM job {job.job_id} ended {state}"

    def _left_queue(self, job: Any) -> bool:
        if job.state != "UNKNOWN":
            return False
        queued = subprocess.run(["squeue", "-h", "-o", "%T", "-j", str(job.job_id)], capture_output=True, text=True)
        return queued.returncode == 0 and not queued.stdout.strip() or "Invalid job id" in queued.stderr
