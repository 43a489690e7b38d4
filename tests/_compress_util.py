"""Shared by the compress tests: a tiny composed config (digits, LeNet-5) and a test-split accuracy."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from jaxdl.config import CONF_DIR


def digits_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[
            "data=digits", "model=lenet5", "model.input_size=16", "trainer.epochs=1", "trainer.batch_size=64",
            "trainer.progress=false", "trainer.eval_batch_size=128", *overrides,
        ])
