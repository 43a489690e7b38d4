"""TensorBoard: scalars, images and the HParams plugin's session records in `<run_dir>/tb/`.

Chosen over tensorboardX and CLU: tensorboardX imports torch when it is installed (1.4 s and 0.6 GB
before the first line of `jaxdl-train`), CLU's writer imports TensorFlow. The `tensorboard` package
itself builds the HParams and image summaries as plain protocol buffers without TensorFlow, and
jaxdl's own event-file writer (jaxdl/tracking/events.py) frames them. `tensorboard --logdir` over a
sweep directory then compares its runs by hyperparameter in the HPARAMS tab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from jaxdl.tracking.base import RunContext, require
from jaxdl.tracking.events import EventWriter


def _hparam_value(value):
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, ctx: RunContext, resume_step: int):
        require("tensorboard")
        from tensorboard.plugins.hparams import summary_v2

        # A resumed run tells TensorBoard to drop what an earlier attempt wrote past the restored step.
        self.writer = EventWriter(ctx.run_dir / "tb", purge_step=resume_step + 1 if resume_step else None)
        if not ctx.resumed or not ctx.state.get("hparams"):
            hparams = {k: _hparam_value(v) for k, v in ctx.params.items()}
            self.writer.add_summary(summary_v2.hparams_pb(hparams, trial_id=ctx.run_name).SerializeToString(), 0)
            ctx.state["hparams"] = True
        self.writer.flush()

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def log_images(self, step: int, images: Mapping[str, Path]) -> None:
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        for tag, path in images.items():
            with Image.open(path) as image:
                width, height = image.size
                channels = len(image.getbands())
            encoded = Path(path).read_bytes()
            picture = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=encoded)
            self.writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=picture)]).SerializeToString(), step)
        self.writer.flush()

    def log_artifacts(self, paths: Mapping[str, Path]) -> None:
        """TensorBoard keeps no files; the run directory has them."""

    def close(self, status: str) -> None:
        self.writer.close()
