"""Every YAML in conf/ composes, and the key names other issues rely on exist."""

from __future__ import annotations

import pytest

from omegaconf import OmegaConf

from jaxdl.config import CONF_DIR, group_options
from jaxdl.data import SOURCES
from jaxdl.models import MODELS
from jaxdl.optim import OPTIMIZERS
from tests.conftest import compose_config

SELECTABLE = [(group, name) for group in ("data", "model", "optimizer", "trainer") for name in group_options(group)]


@pytest.mark.parametrize("group,name", SELECTABLE)
def test_every_group_option_composes_to_its_own_file(group, name):
    cfg = compose_config(f"{group}={name}")
    own = OmegaConf.load(CONF_DIR / group / f"{name}.yaml")
    composed = OmegaConf.to_container(cfg[group], resolve=False)
    for key, value in OmegaConf.to_container(own, resolve=False).items():
        assert composed[key] == value, f"{group}={name}: {key} is {composed[key]!r}, its file says {value!r}"
    registries = {"model": MODELS, "optimizer": OPTIMIZERS, "data": SOURCES}
    if group in registries:  # the option selects something that exists
        assert (cfg[group].source if group == "data" else cfg[group].name) in registries[group]


@pytest.mark.parametrize("name", group_options("experiment"))
def test_every_experiment_composes(name):
    cfg = compose_config(f"experiment={name}")
    assert cfg.trainer.epochs >= 1 and cfg.model.name and cfg.data.name


def test_documented_keys_exist_and_override():
    cfg = compose_config("trainer.epochs=3", "trainer.batch_size=16", "trainer.seed=7", "optimizer.learning_rate=0.01")
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.seed, cfg.optimizer.learning_rate) == (3, 16, 7, 0.01)


def test_default_is_lenet5_on_digits():
    cfg = compose_config()
    assert (cfg.data.name, cfg.model.name) == ("digits", "lenet5")


def test_conf_dir_is_the_checkouts():
    assert (CONF_DIR / "config.yaml").is_file()
