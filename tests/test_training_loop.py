"""Gradient accumulation, the weight EMA and early stopping, each checked against its own definition."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from flax import nnx

from jaxdl import ema, trainer
from jaxdl.apps.job import run_job
from jaxdl.artifacts import load_model
from jaxdl.checkpoint import RunCheckpoints
from jaxdl.steps import make_train_step
from jaxdl.trainer import build_experiment, train_and_evaluate
from jaxdl.trees import named_leaves
from tests.conftest import compose_config, quick_overrides


def _steps(overrides):
    """A digits experiment (LeNet-5: no batch norm, no dropout) and its jitted train step."""
    exp = build_experiment(compose_config(*quick_overrides(*overrides)))
    step = make_train_step(exp.train_def, exp.tx, exp.preprocess, exp.mesh, 0)
    return exp, step


def _leaves(params):
    return {k: np.asarray(v) for k, v in named_leaves(params).items()}


def test_two_accumulated_batches_of_32_equal_one_batch_of_64():
    big, big_step = _steps(["trainer.batch_size=64"])
    small, small_step = _steps(["trainer.batch_size=32", "trainer.grad_accum_steps=2"])
    images, labels = big.dataset.train.images[:192], big.dataset.train.labels[:192]
    big_state, small_state = big.state, small.state
    for start in range(0, 192, 64):  # three Adam updates
        big_state, _ = big_step(big_state, images[start : start + 64], labels[start : start + 64])
        before = _leaves(small_state.params)
        small_state, _ = small_step(small_state, images[start : start + 32], labels[start : start + 32])
        assert all(np.array_equal(v, before[k]) for k, v in _leaves(small_state.params).items())  # a micro-step: no update yet
        small_state, _ = small_step(small_state, images[start + 32 : start + 64], labels[start + 32 : start + 64])
        got, want = _leaves(small_state.params), _leaves(big_state.params)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=0, err_msg=name)


class Stopped(Exception):
    pass


def test_a_run_stopped_between_micro_steps_resumes_exactly(tmp_path, monkeypatch):
    overrides = ["trainer.grad_accum_steps=2", "trainer.checkpoint_every_steps=25", "trainer.epochs=1"]
    train_and_evaluate(compose_config(*quick_overrides(*overrides)), tmp_path / "whole")
    real = trainer.make_train_step

    def stopping(*args, **kwargs):  # the process dies after step 31; the checkpoint of step 25 sits between micro-steps
        step, taken = real(*args, **kwargs), itertools.count(1)

        def counted(*step_args):
            if next(taken) > 31:
                raise Stopped
            return step(*step_args)

        return counted

    monkeypatch.setattr(trainer, "make_train_step", stopping)
    with pytest.raises(Stopped):
        train_and_evaluate(compose_config(*quick_overrides(*overrides)), tmp_path / "split")
    monkeypatch.setattr(trainer, "make_train_step", real)
    ckpts = RunCheckpoints(tmp_path / "split" / "checkpoints")
    assert ckpts.latest_step() == 25
    ckpts.close()
    train_and_evaluate(compose_config(*quick_overrides(*overrides)), tmp_path / "split")
    lines = [json.loads(x) for name in ("whole", "split") for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    keys = ("step", "train/loss", "val/loss", "test/accuracy")
    whole, split = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    assert [{k: r.get(k) for k in keys} for r in split] == [{k: r.get(k) for k in keys} for r in whole]


def test_ema_weights_equal_a_hand_computed_ema_of_the_recorded_steps():
    decay = 0.9
    exp, step = _steps(["trainer.batch_size=32", f"trainer.ema_decay={decay}"])
    state = exp.state
    expected = _leaves(state.params)  # ema_0 = the initial weights
    images, labels = exp.dataset.train.images, exp.dataset.train.labels
    for i in range(5):
        state, _ = step(state, images[32 * i : 32 * (i + 1)], labels[32 * i : 32 * (i + 1)])
        weights = _leaves(state.params)  # the weights after this step, as recorded
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    got = _leaves(ema.ema_params(state.opt_state))
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert not np.allclose(got["head.kernel"], _leaves(state.params)["head.kernel"])  # an average, not the weights


def test_eval_weights_ema_is_what_the_run_validates_and_exports(tmp_path):
    run_dir = tmp_path / "ema"
    summary = train_and_evaluate(compose_config(*quick_overrides("trainer.ema_decay=0.9", "trainer.eval_weights=ema")), run_dir)
    loaded = load_model(run_dir)
    assert loaded.card.provenance["weights"] == "ema" and loaded.card.provenance["ema_decay"] == 0.9
    ckpts = RunCheckpoints(run_dir / "checkpoints")
    exp = build_experiment(compose_config(*quick_overrides("trainer.ema_decay=0.9", "trainer.eval_weights=ema")))
    state, _ = ckpts.restore(summary["best_step"], exp.state)
    ckpts.close()
    stored_ema, raw = _leaves(ema.ema_params(state.opt_state)), _leaves(state.params)
    exported = _leaves(nnx.state(loaded.model, nnx.Param))
    for name in stored_ema:
        np.testing.assert_array_equal(exported[name], stored_ema[name])
    assert not np.array_equal(exported["head.kernel"], raw["head.kernel"])
    test = exp.dataset.test
    accuracy = float((np.asarray(loaded(test.images)).argmax(-1) == test.labels).mean())
    assert accuracy == pytest.approx(summary["test/accuracy"], abs=1e-6)  # the test figure is the EMA's


def _patience_rule(values, patience, min_delta, mode):
    """An independent statement of the rule: the first epoch e with e - (last improving epoch) >= patience."""
    sign = 1 if mode == "max" else -1
    best, best_epoch = -np.inf, 0
    for epoch, value in enumerate(values, 1):
        if sign * value > best + min_delta:
            best, best_epoch = sign * value, epoch
        if epoch - best_epoch >= patience:
            return epoch
    return None


def test_early_stopping_stops_at_the_epoch_the_patience_rule_gives(tmp_path):
    overrides = quick_overrides(
        "trainer.epochs=8", "trainer.early_stopping.patience=2", "trainer.early_stopping.metric=val/loss",
        "trainer.early_stopping.mode=min", "trainer.early_stopping.min_delta=0.05", "optimizer.learning_rate=0.003",
    )  # fmt: skip
    run_dir = tmp_path / "early"
    run_job(compose_config(*overrides), run_dir, in_sweep=False)
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "val/loss" in r]
    stop = _patience_rule([r["val/loss"] for r in epochs], 2, 0.05, "min")
    assert stop is not None and stop < 8 and epochs[-1]["epoch"] == stop  # stopped there, not later
    results = json.loads((run_dir / "results.json").read_text())
    status = json.loads((run_dir / "status.json").read_text())
    for where in (results["stopped_early"], status["stopped_early"]):
        assert where["epoch"] == stop and "val/loss did not improve" in where["reason"]
    assert results["epochs"] == stop and records[-1]["epoch"] == stop and "test/accuracy" in records[-1]
    # a stopped run started again stays stopped: no further epoch
    train_and_evaluate(compose_config(*overrides), run_dir)
    again = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in again if "val/loss" in r] == [r["epoch"] for r in epochs]


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.grad_accum_steps=0", "trainer.grad_accum_steps must be a positive whole number"),
        ("trainer.ema_decay=1.5", "trainer.ema_decay must be a number between 0 and 1"),
        ("trainer.eval_weights=ema", "trainer.eval_weights=ema needs trainer.ema_decay"),
        ("trainer.eval_weights=best", "trainer.eval_weights must be one of raw, ema"),
        ("trainer.early_stopping.patience=0", "trainer.early_stopping.patience must be a positive whole number"),
        (
            "trainer.early_stopping.patience=2 trainer.early_stopping.metric=val/f1",
            "early_stopping.metric 'val/f1' is not recorded",
        ),
        ("trainer.early_stopping.patience=2 trainer.early_stopping.mode=up", "trainer.early_stopping.mode must be max or min"),
    ],
)
def test_bad_loop_settings_are_one_line_before_any_work(override, message):
    from jaxdl.errors import ConfigError

    with pytest.raises(ConfigError, match=message) as err:
        build_experiment(compose_config(*quick_overrides(*override.split())))
    assert "\n" not in str(err.value)
