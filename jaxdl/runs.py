"""A trained run with its training side: the model artifact plus, on demand, its data set and experiment.

Tools that only need the model use `jaxdl.load_model`; this is for those that also need
the run's data (evaluation on its test split, explanations of its images, calibration)
or want to train on (fine-tuning a compressed model):

    run = load_run("runs/digits-lenet5/2026-11-25_15-20-00")
    logits = run.model(run.preprocess(run.dataset.test.images[:8]))
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

from flax import nnx
from omegaconf import DictConfig, OmegaConf

from jaxdl.artifacts import LoadedModel, load_model, resolve_run_dir
from jaxdl.checkpoint import RunCheckpoints, card_identity
from jaxdl.data import Dataset, load_dataset
from jaxdl.data.pipeline import Preprocess
from jaxdl.errors import CheckpointError
from jaxdl.run_status import read_status
from jaxdl.trainer import Experiment, build_experiment

log = logging.getLogger("jaxdl")


@dataclasses.dataclass
class TrainedRun:
    """A loaded model (`model`: what the artifact holds, in eval mode) and the run it came from."""

    loaded: LoadedModel

    @property
    def model(self) -> nnx.Module:
        return self.loaded.model

    @property
    def preprocess(self) -> Preprocess:
        return self.loaded.preprocess

    @property
    def step(self) -> int | None:
        return self.loaded.step

    @property
    def run_dir(self) -> Path:
        return self.loaded.path

    @property
    def cfg(self) -> DictConfig:
        if self.loaded.cfg is None:
            raise CheckpointError(
                f"{self.loaded.path} holds a model without a training config; "
                "it can be used for inference, explanation and fine-tuning only"
            )
        return self.loaded.cfg

    @functools.cached_property
    def dataset(self) -> Dataset:
        """The run's data set, read when first asked for."""
        return load_dataset(self.cfg.data)

    @functools.cached_property
    def experiment(self) -> Experiment:
        """The run's training experiment: a run directory's whole training state (optimiser included) at
        this step, or, for other artifacts, a fresh optimiser around the model's float weights."""
        cfg = OmegaConf.create(OmegaConf.to_container(self.cfg, resolve=True))
        cfg.trainer.init_from = None  # the artifact holds every weight; the pretrained source is not needed
        experiment = build_experiment(cfg, self.dataset)
        checkpoints = self.run_dir / "checkpoints"
        if "float_model" in self.loaded.extras or self.step is None or not checkpoints.is_dir():
            float_model = self.loaded.extras.get("float_model", self.model)
            experiment = experiment.with_model(float_model)
            float_model.eval()
            return experiment
        t = cfg.trainer
        ckpts = RunCheckpoints(
            checkpoints, t.keep_checkpoints, t.best_metric, t.best_mode, card_identity(self.loaded.card.to_json())
        )
        try:
            experiment.state, _ = ckpts.restore(self.step, experiment.state)
        finally:
            ckpts.close()
        nnx.update(experiment.model, experiment.state.params, experiment.state.model_state)
        experiment.model.eval()
        return experiment


def load_run(path: str | Path, which: str | int = "best") -> TrainedRun:
    """The run at `path` (a run directory, a step directory or a compressed checkpoint) with its `which` checkpoint."""
    try:
        return TrainedRun(load_model(path, which))
    except CheckpointError as err:
        return TrainedRun(_newest_complete(Path(path), which, err))


def _newest_complete(path: Path, which: str | int, err: CheckpointError) -> LoadedModel:
    """A run that is still training writes and retires checkpoints while they are read: a step that does not
    read there is being written or replaced, not damaged. `best` / `last` then fall back to the newest step
    that reads whole (checksums verified as always); an explicit step is refused in one line that says so."""
    run_dir, step = resolve_run_dir(path)
    checkpoints = run_dir / "checkpoints"
    if read_status(run_dir).get("status") != "running" or not checkpoints.is_dir():
        raise err
    if step is not None or which not in ("best", "last"):
        raise CheckpointError(
            f"{run_dir} is still training: checkpoint {step if step is not None else which} cannot be read now because "
            f"it is being written or replaced ({err}); pass which=last, or wait until the run completes"
        ) from err
    for candidate in sorted((int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()), reverse=True):
        try:
            loaded = load_model(run_dir, candidate)
        except CheckpointError:
            continue
        log.warning(
            "%s is still training and its %s checkpoint is being written; using step %d, the newest complete one",
            run_dir,
            which,
            candidate,
        )
        return loaded
    raise CheckpointError(
        f"{run_dir} is still training and none of its checkpoints is complete yet (the first is being written); "
        "wait until its first epoch ends"
    ) from err
