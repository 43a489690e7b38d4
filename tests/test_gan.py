"""The GAN loop on real digits: alternating steps, both optimisers checkpointed, exact resume, labelled samples."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from optax import tree_utils

from jaxdl.checkpoint import RunCheckpoints
from jaxdl.config import CONF_DIR, group_options
from jaxdl.data import load_dataset
from jaxdl.errors import ConfigError
from jaxdl.apps.gan import build_gan_experiment, train_gan
from jaxdl.apps.gan_sample import SampleOptions, main as sample_main, write_samples
from tests.conftest import compose_config


def gan_config(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(
            "gan_train",
            overrides=[
                "data=digits",
                "data.label_fraction=0.25",
                "gan=cdcgan",
                "gan.width=4",
                "gan.latent_dim=4",
                "trainer.batch_size=32",
                "trainer.progress=false",
                *overrides,
            ],
        )


def _restore(run_dir, like, step):
    ckpts = RunCheckpoints(run_dir / "checkpoints")
    state, meta = ckpts.restore(step, like)
    ckpts.close()
    return state, meta


@pytest.fixture(scope="module")
def gan_runs(tmp_path_factory):
    """The same 2-epoch run done in one go and as 1 epoch + a resumed second epoch."""
    straight, resumed = tmp_path_factory.mktemp("gan_straight"), tmp_path_factory.mktemp("gan_resumed")
    summary = train_gan(gan_config("trainer.epochs=2"), straight)
    train_gan(gan_config("trainer.epochs=1"), resumed)
    train_gan(gan_config("trainer.epochs=2"), resumed)
    return straight, resumed, summary


def test_every_gan_and_autoencoder_option_composes():
    for app, group in (("gan_train", "gan"), ("autoencoder_train", "autoencoder")):
        for name in group_options(group):
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                cfg = compose(app, overrides=[f"{group}={name}"])
            assert cfg[group].name == name and cfg.trainer.epochs >= 1


def test_resumed_gan_equals_uninterrupted_and_keeps_both_optimisers(gan_runs):
    straight, resumed, summary = gan_runs
    like = build_gan_experiment(gan_config()).state
    step = 2 * (324 // 32)  # 2 epochs of a quarter of the 1,295 training digits
    a, meta = _restore(straight, like, step)
    b, _ = _restore(resumed, like, step)
    assert meta["epoch"] == 2 and int(a.d.step) == int(a.g.step) == step
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # both Adam states moved away from their initial zeros
    for net in (a.g, a.d):
        assert all(np.abs(np.asarray(m)).sum() > 0 for m in jax.tree.leaves(tree_utils.tree_get(net.opt_state, "mu")))
    assert np.isfinite(summary["train/d_loss"]) and np.isfinite(summary["train/g_loss"])


def test_sample_grid_each_epoch(gan_runs):
    straight, resumed, _ = gan_runs
    for run in (straight, resumed):
        assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]


def test_samples_are_labelled_idx_sets_that_load_and_augment(gan_runs, tmp_path):
    straight, _, _ = gan_runs
    out = write_samples(SampleOptions(run_dir=str(straight), n=50, test_n=20, out=str(tmp_path / "syn")))
    synthetic = load_dataset(compose_config("data=idx", f"data.dirs=[{out}]").data)
    assert synthetic.image_shape == (8, 8, 1) and len(synthetic.train) + len(synthetic.val) == 50
    assert len(synthetic.test) == 20 and set(np.unique(synthetic.train.labels)) <= set(range(10))
    real = load_dataset(compose_config("data.label_fraction=0.1").data)
    augmented = load_dataset(compose_config("data.label_fraction=0.1", f"data.extra_train_dirs=[{out}]").data)
    assert len(augmented.train) == len(real.train) + 50 and len(augmented.val) == len(real.val)
    only_two = load_dataset(compose_config("data.classes=[3,7]", f"data.extra_train_dirs=[{out}]").data)
    assert set(np.unique(only_two.train.labels)) == {0, 1}  # synthetic 3s and 7s relabelled like the real ones


def test_sampling_an_unconditional_gan_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "uncond"
    run.mkdir()
    OmegaConf.save(gan_config("gan=dcgan"), run / "config.yaml")
    with pytest.raises(ConfigError, match="unconditional"):
        write_samples(SampleOptions(run_dir=str(run)))
    with pytest.raises(SystemExit) as exit_info:
        sample_main([f"run_dir={run}", "count=5"])
    assert exit_info.value.code == 2 and "count" in capsys.readouterr().err
