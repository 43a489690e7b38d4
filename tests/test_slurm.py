"""The cluster path on a real one-node Slurm (tests/cluster/slurm_up.sh): sweeps through
`hydra/launcher=slurm`, a two-task `jax.distributed` job, a preemption with requeue and resume,
and a cancelled job that must not take its sweep down.

The cluster comes up once per session (~10 s with the packages installed) and always goes
down again. It needs root (and apt-get where the packages are missing): elsewhere these tests
are skipped, in CI they fail.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxdl.run_status import read_status
from tests.conftest import REPO, compose_config

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]  # one xdist worker runs them all

CLUSTER = REPO / "tests" / "cluster"
STATE = Path(os.environ.get("JAXDL_SLURM_DIR", "/tmp/jaxdl-slurm"))
# A few seconds of training per job: one epoch of a quarter-width LeNet-5 on digits.
TINY = ["trainer.epochs=1", "trainer.progress=false", "model.width=0.25", "trainer.batch_size=64", "trainer.eval_batch_size=128"]
TIME_KEYS = ("time/", "train/samples_per_s")
ACTIVE_STATES = {
    "PENDING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "CONFIGURING",
    "SUSPENDED",
}  # sacct states of a job not yet ended


def _why_no_cluster() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the Slurm daemons and their jobs run as root (sudo tests/cluster/slurm_up.sh)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "Slurm is not installed and there is no apt-get to install it (slurm-wlm, munge, slurmdbd, mariadb-server)"
    return None


def _controller_answers(env: dict, wait_s: float) -> bool:
    """Whether `scontrol ping` reaches the controller, retrying for up to `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True).returncode != 0:
        if time.monotonic() >= deadline:
            return False
        time.sleep(2)
    return True


@pytest.fixture(scope="session")
def slurm_env(compile_cache_env) -> dict:
    """The environment of a process using the cluster: SLURM_CONF, this checkout, a shared XLA cache."""
    reason = _why_no_cluster()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the slurm tests must run in CI: {reason}")
        pytest.skip(reason)
    env = {
        **os.environ,
        **compile_cache_env,
        "SLURM_CONF": str(STATE / "etc" / "slurm.conf"),
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    # a slurmctld already started (by .ci/run or a developer) may need a moment to answer under load
    started = (STATE / "run" / "slurmctld.pid").exists()
    if shutil.which("scontrol") and _controller_answers(env, wait_s=60 if started else 0):  # use it, leave it up
        yield env
        return
    up = subprocess.run([str(CLUSTER / "slurm_up.sh")], capture_output=True, text=True, timeout=600)
    try:
        if up.returncode != 0:
            pytest.fail(f"slurm_up.sh failed:\n{up.stdout}{up.stderr}")
        yield env
    finally:
        subprocess.run([str(CLUSTER / "slurm_down.sh")], capture_output=True, text=True, timeout=120)


def _sweep_cmd(sweep_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxdl.apps.train",
        "--multirun",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=cpu",
        f"hydra.sweep.dir={sweep_dir}",
        "trainer.stall_timeout_s=120",  # a job that hangs ends as "stalled" (and is requeued), not at CI's time limit
        *overrides,
    ]


def _sweep(env: dict, sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    result = subprocess.run(_sweep_cmd(sweep_dir, *overrides), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def _start_sweep(env: dict, sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        _sweep_cmd(sweep_dir, *overrides), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(sweep: subprocess.Popen, timeout: float = 600) -> str:
    try:
        output = sweep.communicate(timeout=timeout)[0]
    finally:
        sweep.kill()  # a no-op once it has ended
    assert sweep.returncode == 0, output[-3000:]
    return output


def _poll(what: str, check, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _curves(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timings (which differ run to run)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIME_KEYS)} for r in records]


def _states(env: dict, job: str) -> list[str]:
    """Every state accounting recorded for one job (a requeued job has a record per attempt), once it has ended.

    The job's result file can reach the sweeper before slurmctld records the job's end (its epilog and the
    accounting update come after the batch script exits), so a last state that is still active is waited out.
    """

    def recorded() -> list[str]:
        out = subprocess.run(
            ["sacct", "-n", "-P", "-D", "-X", "-j", job, "-o", "JobID,State"], env=env, capture_output=True, text=True, check=True
        ).stdout
        return [state for job_id, state in (line.split("|") for line in out.splitlines() if line) if job_id == job]

    return _poll(f"job {job} to end in accounting", lambda: (s := recorded()) and s[-1] not in ACTIVE_STATES and s, 60)


def test_a_two_task_job_trains_on_the_union_of_its_shards_repeatably(slurm_env, tmp_path):
    overrides = [
        "model.width=0.25",
        "trainer.batch_size=32",
        "trainer.eval_batch_size=64",
        "trainer.epochs=1",
        "trainer.progress=false",
        "optimizer=sgd",
        "optimizer.learning_rate=0.1",
    ]
    sweep = _start_sweep(slurm_env, tmp_path / "sweep", *overrides, "hydra.launcher.tasks_per_node=2")
    worker = subprocess.run(  # the same training from a plain sbatch script, beside the sweep's job
        [
            "sbatch",
            "--wait",
            "--ntasks=2",
            f"--output={tmp_path / 'worker.out'}",
            "--wrap",
            f"srun {sys.executable} {CLUSTER / 'slurm_worker.py'} {tmp_path} {tmp_path / 'run'} {' '.join(overrides)}",
        ],
        cwd=REPO,
        env=slurm_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert worker.returncode == 0, worker.stderr + (tmp_path / "worker.out").read_text()[-3000:]
    _finish(sweep)

    reports = [json.loads((tmp_path / f"process{i}.json").read_text()) for i in range(2)]
    assert [(r["started"], r["process"], r["processes"], r["devices"]) for r in reports] == [(True, 0, 2, 2), (True, 1, 2, 2)]
    cfg = compose_config(*overrides)
    from jaxdl.data import load_dataset
    from jaxdl.data.pipeline import epoch_order

    train = load_dataset(cfg.data).train
    shard_order = epoch_order(len(train) // 2, cfg.trainer.batch_size // 2, cfg.trainer.seed, 1)
    for b in range(2):
        for p, report in enumerate(reports):  # process p fed rows of its shard: examples p, p + 2, p + 4, ...
            np.testing.assert_array_equal(report["batches"][b]["local"], train.images[p + 2 * shard_order[b]])
            np.testing.assert_array_equal(
                report["batches"][b]["global"],
                np.concatenate([reports[0]["batches"][b]["local"], reports[1]["batches"][b]["local"]]),
            )

    run = tmp_path / "sweep" / "0"
    assert read_status(run)["status"] == "completed"
    assert _curves(run) == _curves(tmp_path / "run") and len(_curves(run)) == 2  # repeatable, to the last bit
    assert json.loads((run / "results.json").read_text()) == json.loads((tmp_path / "run" / "results.json").read_text())
    assert reports[0]["test/accuracy"] == reports[1]["test/accuracy"] > 0.2
    main_log, rank1_log = (run / "run.log").read_text(), (run / "run.rank1.log").read_text()
    assert "jax.distributed: process 0 of 2" in main_log and "process 1 of 2" not in main_log
    assert "jax.distributed: process 1 of 2" in rank1_log and "process 0 of 2" not in rank1_log


def test_a_preempted_job_is_requeued_and_ends_as_if_never_interrupted(slurm_env, tmp_path):
    sweep_dir = tmp_path / "preempt"
    # two identical jobs: 0 is preempted once it has a checkpoint, 1 runs through
    sweep = _start_sweep(
        slurm_env,
        sweep_dir,
        "trainer.epochs=4",
        "trainer.progress=false",
        "model.width=0.25",
        "trainer.batch_size=32",
        "trainer.eval_batch_size=128",
        "trainer.seed=0,0",
    )
    run = sweep_dir / "0"
    first = _poll(
        "job 0 to checkpoint",
        lambda: (
            (run / "checkpoints").is_dir() and any(p.name.isdigit() for p in (run / "checkpoints").iterdir()) and read_status(run)
        ),
    )
    signalled = time.time()
    subprocess.run(["scancel", "--signal=USR2", first["slurm_job"]], env=slurm_env, check=True)
    second = _poll("the requeued attempt", lambda: (s := read_status(run)).get("attempt") == 2 and s)
    output = _finish(sweep)

    assert "resumed from" in (run / "run.log").read_text()
    assert "sweep summary: 2 runs, 0 failed" in output
    final, reference = read_status(run), read_status(sweep_dir / "1")
    assert (final["status"], final["attempt"], final["slurm_restarts"]) == ("completed", 2, 1)
    assert (reference["status"], reference["attempt"]) == ("completed", 1)
    assert second["wall_s"] >= signalled - first["started"]  # the first attempt, counted when it stopped
    assert final["wall_s"] > second["wall_s"] + 0.5  # plus the second one
    assert _states(slurm_env, first["slurm_job"]) == ["REQUEUED", "COMPLETED"]
    assert _curves(run) == _curves(sweep_dir / "1") and len(_curves(run)) == 5
    assert json.loads((run / "results.json").read_text()) == json.loads((sweep_dir / "1" / "results.json").read_text())


def _check_completed_jobs(env: dict, sweep: Path, runs: list[int]) -> None:
    """Each run completed on the cpu partition, with no GPU setting in its sbatch script, and returned its objective."""
    statuses = {i: read_status(sweep / str(i)) for i in runs}
    for i, status in statuses.items():
        results = json.loads((sweep / str(i) / "results.json").read_text())
        assert status["objective_value"] == results["best_val/accuracy"] and 0.2 < status["objective_value"] <= 1
        assert _states(env, status["slurm_job"]) == ["COMPLETED"]
    # what each job returned to the sweeper (submitit's result files), and the sbatch script it ran
    submitit = [p for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name]
    returned = {}
    for folder in submitit:
        result = next(folder.glob("*_result.pkl"), None)
        if result is not None:  # a cancelled job leaves none
            outcome, job_return = pickle.loads(result.read_bytes())
            assert outcome == "success"
            returned[int(job_return.hydra_cfg.hydra.job.num)] = job_return.return_value
    array_id = submitit[0].name.split("_")[0]
    script = (sweep / ".submitit" / array_id / f"{array_id}_submission.sh").read_text()
    assert "#SBATCH --partition=cpu" in script and "#SBATCH --ntasks-per-node=1" in script and "gpu" not in script
    assert returned == {i: s["objective_value"] for i, s in statuses.items()}


def test_a_cancelled_job_fails_alone_and_the_sweep_on_a_cpu_partition_still_compares(slurm_env, tmp_path):
    """One sweep on the cpu partition (no GPU settings needed) whose middle job is cancelled mid-training."""
    sweep_dir = tmp_path / "cancel"
    # job 1 trains long enough to be cancelled mid-training (submitit ignores the SIGTERM; SIGKILL follows in 5 s)
    sweep = _start_sweep(slurm_env, sweep_dir, *TINY[1:], "trainer.epochs=1,40,2")
    job = _poll("job 1 to train", lambda: read_status(sweep_dir / "1").get("slurm_job"))
    subprocess.run(["scancel", job], env=slurm_env, check=True)
    output = _finish(sweep)

    statuses = [read_status(sweep_dir / str(i)) for i in range(3)]
    assert [s["status"] for s in statuses] == ["completed", "failed", "completed"]
    assert statuses[1]["error"] == f"SLURM job {job} ended CANCELLED by 0"
    assert statuses[1]["attempt"] == 1 and statuses[1]["slurm_job"] == job
    assert "failed job 1: SLURM job" in output
    _check_completed_jobs(slurm_env, sweep_dir, [0, 2])
    rows = {r["run"]: r for r in csv.DictReader((sweep_dir / "comparison.csv").open())}
    assert {k: (r["status"], r["trainer.epochs"]) for k, r in rows.items()} == {
        "0": ("completed", "1"),
        "1": ("failed", "40"),
        "2": ("completed", "2"),
    }
    assert "- 1: SLURM job" in (sweep_dir / "comparison.md").read_text() and (sweep_dir / "comparison.html").exists()


def test_without_accounting_a_job_that_left_the_queue_ends_the_wait(slurm_env, tmp_path):
    """No `sacct` answer (a cluster without accounting): submitit alone would wait for the job forever."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacct").write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    (fake / "sacct").chmod(0o755)
    env = {**slurm_env, "PATH": f"{fake}{os.pathsep}{slurm_env['PATH']}"}
    sweep_dir = tmp_path / "no_accounting"  # one job held back by --begin, then cancelled before it ever runs
    sweep = _start_sweep(env, sweep_dir, *TINY, "+hydra.launcher.additional_parameters.begin=now+600")
    job = _poll(
        "the job to be queued",
        lambda: subprocess.run(["squeue", "-h", "-r", "-o", "%i"], env=env, capture_output=True, text=True).stdout.strip(),
    )
    subprocess.run(["scancel", job], env=env, check=True)
    _finish(sweep, timeout=120)
    assert read_status(sweep_dir / "0") | {"updated": None} == {
        "status": "failed",
        "updated": None,
        "error": f"SLURM job {job} left the queue without a result (no accounting to say why)",
    }
