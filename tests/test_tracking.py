"""Trackers started for real: MLflow (embedded store and a real `mlflow server`), TensorBoard read back with
tensorboard's own reader (scalars, images, the HParams summary), W&B offline files; resume and failure."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from jaxdl import tracking
from jaxdl.errors import ConfigError
from jaxdl.trainer import train_and_evaluate
from tests.conftest import compose_config, quick_overrides
from tests.tracking_files import wandb_history

pytest.importorskip("mlflow")
pytest.importorskip("wandb")
pytest.importorskip("tensorboard")

ALL = "trainer.loggers=[jsonl,tensorboard,mlflow,wandb]"
EPOCH_KEYS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy")


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """Two epochs with every tracker, then the same run directory extended to three (a resume)."""
    run_dir = tmp_path_factory.mktemp("tracked")
    train_and_evaluate(compose_config(*quick_overrides(ALL, "trainer.epochs=2")), run_dir)
    train_and_evaluate(compose_config(*quick_overrides(ALL, "trainer.epochs=3")), run_dir)
    return run_dir


def test_mlflow_embedded_store_holds_one_run_continued_across_the_resume(resumed_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{resumed_run}/mlflow.db")
    experiment = client.get_experiment_by_name("jaxdl")
    (run,) = client.search_runs([experiment.experiment_id])  # no duplicate run
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "lenet5" and run.data.params["optimizer.name"] == "adam"
    assert run.data.tags["host"] == socket.gethostname() and len(run.data.tags["git_commit"]) == 40
    epochs = [r for r in _records(resumed_run) if "val/accuracy" in r]
    for key in EPOCH_KEYS:
        history = client.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in epochs]
    step_curve = [m.step for m in client.get_metric_history(run.info.run_id, "train_steps/loss")]
    assert step_curve == [20, 40, 60, 80, 100, 120]  # every trainer.log_every steps, none twice across the resume
    test_steps = [m.step for m in client.get_metric_history(run.info.run_id, "test/accuracy")]
    assert len(test_steps) == len(set(test_steps)) and test_steps[-1] == 120
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "results.json", "model.json", "eval", "curves.png", "checkpoints"} <= listed
    assert (resumed_run / "mlartifacts").is_dir()  # the embedded store keeps its files beside the run


def test_tensorboard_scalars_images_and_hparams_read_back_with_tensorboard(resumed_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = EventAccumulator(str(resumed_run / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    epochs = [r for r in _records(resumed_run) if "val/accuracy" in r]
    for key in EPOCH_KEYS:
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in epochs]
    assert {"curves", "confusion_matrix", "misclassified"} <= set(events.Tags()["images"])
    assert events.Images("curves")[-1].encoded_image_string == (resumed_run / "curves.png").read_bytes()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["model.name"].string_value == "lenet5" and hparams["trainer.batch_size"].number_value == 32


def test_wandb_offline_files_hold_one_run_and_every_step_once(resumed_run):
    ids, history = wandb_history(resumed_run)
    assert len(ids) == 1  # the resumed part continued the same W&B run
    epochs = [r for r in _records(resumed_run) if "val/accuracy" in r]
    logged = [(step, values["val/accuracy"]) for step, values in history if "val/accuracy" in values]
    assert logged == [(r["step"], pytest.approx(r["val/accuracy"], rel=1e-6)) for r in epochs]
    assert json.loads((resumed_run / "trackers.json").read_text())["wandb"]["run_id"] in ids


def test_a_missing_or_unknown_tracker_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'jaxdl\[wandb\]'"):
        tracking.requested(compose_config("trainer.loggers=[jsonl,wandb]").trainer)
    with pytest.raises(ConfigError, match="aim is not supported"):
        tracking.requested(compose_config("trainer.loggers=[aim]").trainer)
    with pytest.raises(ConfigError, match="unknown logger 'neptune'"):
        tracking.requested(compose_config("trainer.loggers=[neptune]").trainer)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 with a SQLite backend; stopped by the test or at teardown."""
    port, db = _free_port(), tmp_path / "server.db"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination",
         str(tmp_path / "server_artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None, "mlflow server exited"
            time.sleep(0.5)
    else:
        pytest.fail("mlflow server did not start in 120 s")

    def stop() -> None:
        if server.poll() is None:
            import os

            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    yield url, db, stop
    stop()


def test_a_sweep_logs_child_runs_to_a_real_server_and_survives_it_going_down(mlflow_server, tmp_path, monkeypatch, caplog):
    from mlflow.tracking import MlflowClient

    from jaxdl.tracking.mlflow import MLflowTracker

    url, db, stop = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    sweep = tmp_path / "sweep"
    monkeypatch.setattr(tracking, "sweep_dir", lambda: sweep)  # what Hydra's multirun gives a job
    logged = MLflowTracker.log_metrics

    train_and_evaluate(compose_config(*quick_overrides("trainer.loggers=[jsonl,mlflow]", "trainer.epochs=1")), sweep / "0")
    server = MlflowClient(url)
    (first,) = server.search_runs([server.get_experiment_by_name("jaxdl").experiment_id], "tags.host != ''", max_results=5)[:1]
    assert {"config.yaml", "results.json", "model.json"} <= {a.path for a in server.list_artifacts(first.info.run_id)}

    def log_then_kill_the_server(self, step, metrics):
        logged(self, step, metrics)
        stop()  # the server goes down in the middle of the run

    monkeypatch.setattr(MLflowTracker, "log_metrics", log_then_kill_the_server)
    caplog.set_level(logging.WARNING, logger="jaxdl")
    start = time.monotonic()
    summary = train_and_evaluate(
        compose_config(*quick_overrides("trainer.loggers=[jsonl,mlflow]", "trainer.epochs=2")), sweep / "1"
    )
    assert time.monotonic() - start < 120 and summary["test/accuracy"] > 0.5  # training finished, not held up
    warnings = [r for r in caplog.records if "tracker mlflow failed" in r.getMessage()]
    assert len(warnings) == 1
    assert [r["epoch"] for r in _records(sweep / "1")] == [1, 2, 2]  # the run's own records are whole

    store = MlflowClient(f"sqlite:///{db}")  # the dead server's store, read directly
    runs = store.search_runs([store.get_experiment_by_name("jaxdl").experiment_id])
    parents = [r for r in runs if "jaxdl.sweep_dir" in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].data.tags["jaxdl.sweep_dir"] == str(sweep)
    assert len(children) == 2 and {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    second = next(c for c in children if c.info.run_name.endswith("/1"))
    history = lambda key: [m.step for m in store.get_metric_history(second.info.run_id, key)]
    assert history("train_steps/loss") == [20] and history("val/accuracy") == []  # what it logged before it died


def test_a_hydra_multirun_is_one_parent_mlflow_run_with_a_child_per_job(tmp_path, compile_cache_env):
    from mlflow.tracking import MlflowClient

    from jaxdl.apps.compare.records import find_runs
    from tests.conftest import run_cli

    sweep = tmp_path / "sweep"
    tiny = ["trainer.epochs=1", "trainer.progress=false", "model.width=0.25", "trainer.batch_size=64"]
    result = run_cli(
        "-m", "jaxdl.apps.train", "--multirun", f"hydra.sweep.dir={sweep}", *tiny, "trainer.loggers=[jsonl,mlflow]",
        "trainer.seed=0,1", env=compile_cache_env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    client = MlflowClient(f"sqlite:///{sweep}/mlflow.db")  # the embedded store lives beside the sweep
    runs = client.search_runs([client.get_experiment_by_name("jaxdl").experiment_id])
    (parent,) = [r for r in runs if "jaxdl.sweep_dir" in r.data.tags]
    children = sorted((r for r in runs if r is not parent), key=lambda r: r.info.run_name)
    assert [c.info.run_name for c in children] == ["sweep/0", "sweep/1"] and parent.info.run_name == "sweep"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert [c.data.params["trainer.seed"] for c in children] == ["0", "1"]
    assert len(find_runs([sweep])) == 2  # the store's artifact copies are not mistaken for runs


def test_explain_report_is_added_to_the_training_runs_mlflow_record(resumed_run, tmp_path):
    from mlflow.tracking import MlflowClient

    report = tmp_path / "report.html"
    report.write_text("<html>explanations</html>")
    tracking.attach_to_run(resumed_run, {"explain/report.html": report})  # what jaxdl-explain does after writing it
    client = MlflowClient(f"sqlite:///{resumed_run}/mlflow.db")
    run_id = json.loads((resumed_run / "trackers.json").read_text())["mlflow"]["run_id"]
    assert [a.path for a in client.list_artifacts(run_id, "explain")] == ["explain/report.html"]
    tracking.attach_to_run(tmp_path, {"explain/report.html": report})  # a run without trackers: nothing to do
