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


def load_run(path: str | Path, which: str | int = "best") -> TrainedRun:
    """The model of a run directory with its best (or last, or a given step's) checkpoint restored."""
    run_dir, step = resolve_run_dir(path)
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise CheckpointError(f"{run_dir} is not a jaxdl run directory (no config.yaml); pass the directory jaxdl-train wrote")
    cfg = OmegaConf.load(config_path)
    if cfg.trainer.get("init_from"):  # the checkpoint holds every weight; the pretrained run is not needed
        cfg.trainer.init_from = None
    experiment = build_experiment(cfg)
    ckpts = RunCheckpoints(run_dir / "checkpoints", keep_last=cfg.trainer.keep_checkpoints,
                           best_metric=cfg.trainer.best_metric, best_mode=cfg.trainer.best_mode)
    if step is None:
        step = ckpts.best_step() if which == "best" else ckpts.latest_step() if which == "last" else int(which)
    if step is None or step not in ckpts.manager.all_steps():
        raise CheckpointError(f"no checkpoint {'' if step is None else step} in {ckpts.directory}; train first or pick one of {list(ckpts.manager.all_steps())}")
    state, _ = ckpts.restore(step, experiment.state)
    ckpts.close()
    experiment.state = state
    nnx.update(experiment.model, state.params, state.model_state)
    experiment.model.eval()
    return TrainedRun(run_dir, step, experiment)
