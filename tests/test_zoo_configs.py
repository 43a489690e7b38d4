"""Every zoo experiment composes with Hydra and names a registered model."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from jaxdl import models
from jaxdl.config import CONF_DIR

EXPERIMENTS = sorted(
    p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if p.stem.startswith(("fashion_mnist_", "signals1d_"))
)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_zoo_experiment_composes(experiment):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"])
    assert cfg.model.name in models.MODELS
    assert cfg.data.name in ("fashion_mnist", "signals1d")
    assert cfg.trainer.epochs >= 5
