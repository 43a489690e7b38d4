"""The data-parallel step: 4 fake CPU devices give the 1-device result."""

from __future__ import annotations

import textwrap

from jaxdl.cpu_devices import xla_threads
from tests.conftest import run_cli

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from jax.sharding import AxisType
    from jaxdl import models, optim
    from jaxdl.data import load_dataset
    from jaxdl.data.pipeline import Loader
    from jaxdl.steps import init_state, make_train_step, split_model
    from jaxdl.data.pipeline import make_preprocess
    from tests.conftest import compose_config

    assert jax.device_count() == 4, jax.devices()
    cfg = compose_config("optimizer=momentum")
    data = load_dataset(cfg.data)
    spec = models.InputSpec((28, 28), 1, 10)
    preprocess = make_preprocess(cfg.data, spec.size, *data.channel_stats())

    def three_steps(devices):
        mesh = jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)
        model = models.build(cfg.model, spec, seed=0)
        tx = optim.build(cfg.optimizer, steps_per_epoch=10, epochs=1)
        train_def, _, params, rest = split_model(model)
        state = init_state(params, rest, tx, mesh)
        step = make_train_step(train_def, tx, preprocess, mesh, seed=0)
        loader = Loader(data.train, mesh)
        for images, labels in list(loader.train_batches(32, seed=0, epoch=1))[:3]:
            state, metrics = step(state, images, labels)
        assert len(images.sharding.device_set) == len(devices)
        return jax.device_get(state.params), float(metrics["loss_sum"])

    one, loss_one = three_steps(jax.devices()[:1])
    four, loss_four = three_steps(jax.devices())
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four)))
    assert worst < 1e-5, worst
    assert abs(loss_one - loss_four) < 1e-4 * abs(loss_one), (loss_one, loss_four)
    print("max abs difference", worst)
""")


def test_four_device_step_equals_one_device_step():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PJRT_NPROC": str(xla_threads(4)), "JAX_PLATFORMS": "cpu"}
    result = run_cli("-c", SCRIPT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max abs difference" in result.stdout


def test_training_app_runs_on_four_devices(tmp_path):
    result = run_cli(
        "-m",
        "jaxdl.apps.train",
        "trainer.epochs=1",
        "trainer.progress=false",
        f"hydra.run.dir={tmp_path}",
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 device(s)" in result.stdout + result.stderr
