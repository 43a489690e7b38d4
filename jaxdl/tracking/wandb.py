"""Weights & Biases: offline files under `<run_dir>/wandb/` unless an API key is configured.

Mode: `WANDB_MODE` when set; else online with `WANDB_API_KEY`, offline without (`wandb sync
<run_dir>/wandb/offline-run-*` uploads later). The run id is kept in `trackers.json`, so a resumed
run continues the same W&B run (`resume="allow"`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Mapping

from jaxdl.tracking.base import RunContext, require


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


class WandbTracker:
    name = "wandb"

    def __init__(self, ctx: RunContext, resume_step: int):
        os.environ.setdefault("WANDB_SILENT", "true")  # no console lines of its own between the epoch lines
        wandb = require("wandb")
        self._wandb = wandb
        run_id = ctx.state.get("run_id") or uuid.uuid4().hex[:12]
        self.run = wandb.init(
            project=ctx.experiment,
            dir=str(ctx.run_dir),
            id=run_id,
            resume="allow",
            mode=wandb_mode(),
            name=ctx.run_name,
            group=ctx.sweep_dir.name if ctx.sweep_dir is not None else None,
            config=ctx.params,
            tags=[f"{k}:{v}" for k, v in ctx.tags.items()][:20],
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
            reinit="create_new",
        )
        ctx.state["run_id"] = run_id
        self.run_dir = ctx.run_dir

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def log_images(self, step: int, images: Mapping[str, Path]) -> None:
        self.run.log({name: self._wandb.Image(str(path)) for name, path in images.items()}, step=step)

    def log_artifacts(self, paths: Mapping[str, Path]) -> None:
        for path in paths.values():
            path = Path(path)
            pattern = str(path / "**" / "*") if path.is_dir() else str(path)
            self.run.save(pattern, base_path=str(self.run_dir), policy="now")

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)
