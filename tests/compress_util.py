"""Shared by the compress tests: a seconds-long digits LeNet-5 config."""

from __future__ import annotations

from tests.conftest import compose_config, quick_overrides


def digits_config(*overrides: str):
    return compose_config(
        *quick_overrides(
            "data=digits", "model=lenet5", "model.input_size=16", "trainer.epochs=1", "trainer.batch_size=64", *overrides
        )
    )
