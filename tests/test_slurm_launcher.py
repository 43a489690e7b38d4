"""jaxdl's submitit launchers without a cluster: the sbatch script each config asks for, and how a job
that died is recorded instead of raised (the cluster tests in test_slurm.py run them for real)."""

from __future__ import annotations

import os
import stat

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from submitit.core.utils import FailedJobError, UncompletedJobError

from jaxdl.config import CONF_DIR
from jaxdl.run_status import read_status, write_status


def _launcher(tmp_path, *overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config", overrides=["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}", *overrides], return_hydra_config=True
        )
    from omegaconf import OmegaConf

    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    launcher_cfg["submitit_folder"], launcher_cfg["name"] = str(tmp_path / ".submitit" / "%j"), "train"
    return instantiate(launcher_cfg)


def _sbatch(tmp_path, monkeypatch, *overrides: str) -> str:
    """The sbatch script the launcher would submit (submitit needs an `srun` on PATH; a stub will do)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return _launcher(tmp_path, *overrides).executor()._executor._make_submission_file_text("python -m jaxdl.apps.train", "uid")


def test_a_cpu_partition_needs_only_its_name(tmp_path, monkeypatch):
    script = _sbatch(tmp_path, monkeypatch, "hydra.launcher.partition=cpu")
    for line in ("--partition=cpu", "--nodes=1", "--ntasks-per-node=1", "--requeue", "--signal=USR2@120", "--time=240"):
        assert f"#SBATCH {line}\n" in script, line
    assert "gpu" not in script and "gres" not in script
    assert _sbatch(tmp_path, monkeypatch, "hydra.launcher.partition=cpu", "hydra.launcher.gpus_per_node=0") == script


def test_gpus_per_node_gives_one_task_per_gpu(tmp_path, monkeypatch):
    script = _sbatch(
        tmp_path, monkeypatch, "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=8", "hydra.launcher.nodes=2"
    )
    for line in ("--partition=gpu", "--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8"):
        assert f"#SBATCH {line}\n" in script, line
    assert "--gpus-per-task" not in script  # every task sees every GPU of its node; JAX takes SLURM_LOCALID's
    explicit = _sbatch(tmp_path, monkeypatch, "hydra.launcher.gpus_per_node=8", "hydra.launcher.tasks_per_node=1")
    assert "#SBATCH --ntasks-per-node=1\n" in explicit and "#SBATCH --gpus-per-node=8\n" in explicit


class _DeadJob:
    """A submitit job that ended without a result, as `scancel` or the OOM killer leaves one."""

    job_id, state = "41_1", "CANCELLED by 0"

    def __init__(self, error: Exception):
        self.error = error

    def done(self, force_check: bool = False) -> bool:
        return True

    def results(self):
        raise self.error


@pytest.mark.parametrize(
    "error, reason",
    [
        (
            UncompletedJobError("Job 41_1 (task: 0) has not produced any output (state: CANCELLED by 0)"),
            "SLURM job 41_1 ended CANCELLED by 0",
        ),
        (
            FailedJobError(
                "Job (task=0) failed during processing with trace:\n----------------------\nTraceback ...\n"
                "  File x\nMemoryError: out of memory\n\n----------------------\nYou can check full logs"
            ),
            "SLURM job 41_1: MemoryError: out of memory",
        ),
    ],
)
def test_a_dead_job_is_recorded_failed_and_returns_no_objective(tmp_path, monkeypatch, error, reason):
    launcher = _launcher(tmp_path)
    run_dir = tmp_path / "1"
    monkeypatch.setattr(launcher, "_run_dir", lambda overrides, idx: run_dir)
    write_status(run_dir, "running", attempt=2, wall_s=12.5, started=0.0)  # its second attempt was killed
    returned = launcher._outcome(_DeadJob(error), ["trainer.seed=1"], 1, gone=set())
    assert returned.return_value is None and returned.status.name == "COMPLETED"
    assert read_status(run_dir) | {"updated": None} == {
        "status": "failed",
        "updated": None,
        "attempt": 2,
        "wall_s": 12.5,
        "error": reason,
    }
    assert yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) == ["trainer.seed=1"]
