"""Load a trained run back: its config, data, and the model with a checkpoint's weights.

This is how the explanation and compression apps (and notebooks) get a trained model:

    run = load_run("runs/digits-lenet5/2026-11-25_15-20-00")
    logits = run.model(run.preprocess(run.dataset.test.images[:8]))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flax import nnx
from omegaconf import DictConfig, OmegaConf

from jaxdl.checkpoint import RunCheckpoints
from jaxdl.errors import CheckpointError
from jaxdl.train import Experiment, build_experiment


@dataclasses.dataclass
class TrainedRun:
    """A run directory's experiment with the weights of one of its checkpoints, model in eval mode."""

    run_dir: Path
    step: int
    experiment: Experiment

    @property
    def cfg(self) -> DictConfig:
        return self.experiment.cfg

    @property
    def model(self) -> nnx.Module:
        return self.experiment.model

    @property
    def dataset(self):
        return self.experiment.dataset

    @property
    def preprocess(self):
        return self.experiment.preprocess


def resolve_run_dir(path: str | Path) -> tuple[Path, int | None]:
    """Accept a run directory, its `checkpoints/` directory or one `checkpoints/<step>` directory."""
    path = Path(path).expanduser().absolute()
    if path.name.isdigit() and path.parent.name == "checkpoints":
        return path.parent.parent, int(path.name)
    if path.name == "checkpoints":
        return path.parent, None
    return path, None


def run_config(path: str | Path) -> DictConfig:
    """The config a run directory (or a compressed checkpoint) was trained with."""
    from xai.compress.storage import find_compressed

    compressed = find_compressed(path)
    run_dir = compressed if compressed is not None else resolve_run_dir(path)[0]
    if not (run_dir / "config.yaml").exists():
        raise CheckpointError(f"{run_dir} is not a jaxdl run directory (no config.yaml); pass the directory jaxdl-train wrote")
    return OmegaConf.load(run_dir / "config.yaml")


def load_run(path: str | Path, which: str | int = "best") -> TrainedRun:
    """The model of a run directory with its best (or last, or a given step's) checkpoint restored.

    A compressed checkpoint (written by jaxdl-compress) loads as its compressed model."""
    from xai.compress.storage import find_compressed

    if find_compressed(path) is not None:
        from xai.compress.loading import load_compressed

        return load_compressed(path)
    run_dir, step = resolve_run_dir(path)
    cfg = run_config(run_dir)
    if cfg.trainer.get("init_from"):  # the checkpoint holds every weight; the pretrained run is not needed
        cfg.trainer.init_from = None
    experiment = build_experiment(cfg)
    ckpts = RunCheckpoints(run_dir / "checkpoints", keep_last=cfg.trainer.keep_checkpoints,
                           best_metric=cfg.trainer.best_metric, best_mode=cfg.trainer.best_mode)
    step = ckpts.select_step(which if step is None else step)
    state, _ = ckpts.restore(step, experiment.state)
    ckpts.close()
    experiment.state = state
    nnx.update(experiment.model, state.params, state.model_state)
    experiment.model.eval()
    return TrainedRun(run_dir, step, experiment)
