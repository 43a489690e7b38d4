"""Sweeps end to end: a grid through submitit_local, an Optuna search, and a sweep with a failing job."""

from __future__ import annotations

import csv

import pytest
import yaml
from omegaconf import OmegaConf

from jaxdl.apps import job
from jaxdl.apps.compare.app import main as compare_main
from jaxdl.apps.compare.records import find_runs
from jaxdl.run_status import read_status, write_status
from tests.conftest import compose_config, run_cli

# Seconds per job: one short epoch of a quarter-width LeNet-5 on digits.
TINY = ["trainer.epochs=1", "trainer.progress=false", "model.width=0.25", "trainer.batch_size=64", "trainer.eval_batch_size=128"]


def _sweep(env: dict, sweep_dir, *overrides: str):
    result = run_cli(
        "-m", "jaxdl.apps.train", "--multirun", f"hydra.sweep.dir={sweep_dir}", *TINY, *overrides, env=env, timeout=600
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def test_grid_through_submitit_local_and_compare_reports_four_runs(tmp_path, capsys, compile_cache_env):
    sweep = tmp_path / "grid"
    _sweep(compile_cache_env, sweep, "hydra/launcher=local", "optimizer.learning_rate=0.003,0.01", "trainer.seed=0,1")
    assert len([p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]) == 4  # a submitit process per job
    assert [read_status(sweep / str(i))["status"] for i in range(4)] == ["completed"] * 4
    assert (sweep / "comparison.html").exists()  # the sweep summary written when the sweep ended

    compare_main([str(sweep), "--out", str(tmp_path / "report"), "--top", "2"])
    printed = capsys.readouterr().out
    assert "4 runs; top 2 by best val/accuracy" in printed and printed.count("[completed]") == 2
    rows = list(csv.DictReader((tmp_path / "report" / "comparison.csv").open()))
    assert len(rows) == 4 and {r["optimizer.learning_rate"] for r in rows} == {"0.003", "0.01"}
    accuracies = [float(r["best val/accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True) and all(0 < a <= 1 for a in accuracies)
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "## Configurations over seeds (mean ± std)" in markdown and markdown.count(" ± ") >= 2 * 6
    page = (tmp_path / "report" / "comparison.html").read_text()
    assert page.count("<tr") == 1 + 4 + 1 + 2 and "data:image/png;base64," in page and "sortable" in page


def test_optuna_search_returns_the_best_trial(tmp_path, compile_cache_env):
    sweep = tmp_path / "optuna"
    _sweep(
        compile_cache_env,
        sweep,
        "hparams_search=lenet_optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}",
        "trainer.epochs=1",
    )
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    runs = find_runs([sweep])
    assert len(runs) == 3 and all(r.status == "completed" for r in runs)
    values = {r.name: read_status(r.path)["objective_value"] for r in runs}
    winner = max(runs, key=lambda r: values[r.name])
    assert best["best_value"] == pytest.approx(values[winner.name])
    assert {k: str(v) for k, v in best["best_params"].items()} == {k: winner.overrides[k] for k in best["best_params"]}
    # model.width and trainer.batch_size are fixed by TINY on the command line, so Optuna searched the other two
    assert set(best["best_params"]) == {"optimizer.learning_rate", "optimizer.weight_decay"}
    assert (tmp_path / "optuna.db").stat().st_size > 0  # the study persisted (needs SQLAlchemy < 2, pinned)


def test_a_failing_job_is_recorded_and_the_others_complete(tmp_path, capsys, compile_cache_env):
    sweep = tmp_path / "failing"
    overrides = ("optimizer=sgd", "optimizer.learning_rate=0.05,1e9")
    result = _sweep(compile_cache_env, sweep, *overrides)
    good, bad = read_status(sweep / "0"), read_status(sweep / "1")
    assert good["status"] == "completed" and good["objective_value"] > 0.2
    assert bad["status"] == "failed" and bad["error"].startswith("TrainingDiverged: training diverged: the loss is")
    assert "failed job 1: TrainingDiverged" in result.stdout + result.stderr
    assert "- 1: TrainingDiverged: training diverged: the loss is" in (sweep / "comparison.md").read_text()

    write_status(sweep / "0", "running", attempt=1)  # as a job killed after its last checkpoint leaves it
    rerun = _sweep(compile_cache_env, sweep, *overrides)  # the same sweep again, as a requeue runs it
    assert "resumed from" in rerun.stdout + rerun.stderr
    assert read_status(sweep / "0") | {"updated": None, "wall_s": None} == {
        "status": "completed",
        "updated": None,
        "wall_s": None,
        "attempt": 2,
        "objective": "val/accuracy",
        "objective_value": good["objective_value"],
    }
    assert read_status(sweep / "1")["attempt"] == 2 and read_status(sweep / "1")["status"] == "failed"

    compare_main([str(sweep)])
    assert "failed: 1: TrainingDiverged" in capsys.readouterr().out


def test_run_job_records_any_exception_in_a_sweep_and_raises_outside(tmp_path, monkeypatch):
    def crash(cfg, run_dir, **_):
        raise RuntimeError("segfault-like crash\nwith a second line")

    monkeypatch.setattr(job, "train_and_evaluate", crash)
    cfg = compose_config(*TINY)
    assert job.run_job(cfg, tmp_path / "a", in_sweep=True) is None
    assert read_status(tmp_path / "a") | {"updated": None} == {
        "status": "failed",
        "updated": None,
        "attempt": 1,
        "wall_s": pytest.approx(0, abs=1),
        "error": "RuntimeError: segfault-like crash",
    }
    with pytest.raises(RuntimeError):
        job.run_job(cfg, tmp_path / "b", in_sweep=False)
    assert read_status(tmp_path / "b")["status"] == "failed"


def test_a_job_completed_with_the_same_config_is_skipped(tmp_path, monkeypatch):
    cfg = compose_config(*TINY)
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (tmp_path / "results.json").write_text('{"best_val/accuracy": 0.75}')
    write_status(tmp_path, "completed", attempt=1)
    monkeypatch.setattr(job, "train_and_evaluate", lambda cfg, run_dir, **_: pytest.fail("trained again"))
    assert job.run_job(cfg, tmp_path, in_sweep=True) == 0.75
    monkeypatch.setattr(job, "train_and_evaluate", lambda cfg, run_dir, **_: {"best_val/accuracy": 0.5})
    assert job.run_job(compose_config(*TINY, "trainer.epochs=2"), tmp_path, in_sweep=True) == 0.5  # config changed
    assert read_status(tmp_path)["attempt"] == 2


def test_objective_is_the_best_value_of_the_configured_metric():
    cfg = compose_config("trainer.objective=val/accuracy")
    assert job.objective_value(cfg, {"best_val/accuracy": 0.9, "test/accuracy": 0.8}) == 0.9
    assert job.objective_value(compose_config("trainer.objective=test/accuracy"), {"test/accuracy": 0.8}) == 0.8
    assert job.objective_value(compose_config("trainer.objective=null"), {"test/accuracy": 0.8}) is None


@pytest.mark.parametrize(
    "overrides",
    [
        ["hparams_search=lenet_optuna"],
        ["hparams_search=lenet_grid_seeds"],
        ["hydra/launcher=local"],
        ["hydra/launcher=slurm"],
    ],
)
def test_sweep_configs_compose(overrides):
    from hydra import compose, initialize_config_dir

    from jaxdl.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    assert cfg.trainer.objective == "val/accuracy"
    if overrides[0].startswith("hparams_search"):
        assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweeper.params
    else:
        assert cfg.hydra.launcher._target_.startswith("hydra_plugins.jaxdl_launchers.") and cfg.hydra.launcher.timeout_min > 0


def test_a_bad_distributed_setting_fails_only_its_job(tmp_path):
    cfg = compose_config(*TINY, "trainer.distributed=sometimes")
    assert job.run_job(cfg, tmp_path, in_sweep=True) is None
    assert read_status(tmp_path)["error"].startswith("ConfigError: trainer.distributed must be one of auto, true, false")
