"""`jaxdl-train`: train a registered model on a data source, as the Hydra config says.

    jaxdl-train data=fashion_mnist model=lenet5 optimizer=adam trainer.epochs=5

Re-running a command with the same `hydra.run.dir` resumes from its last checkpoint.
"""

from __future__ import annotations

from omegaconf import DictConfig

from jaxdl.apps import hydra_app


def run(cfg: DictConfig, output_dir: str) -> float | None:
    """The Hydra task: returns `trainer.objective` so sweepers (grid, Optuna) can optimise it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from jaxdl.apps.job import run_job

    return run_job(cfg, output_dir, HydraConfig.get().mode == RunMode.MULTIRUN)


main = hydra_app("config", run)

if __name__ == "__main__":
    main()
