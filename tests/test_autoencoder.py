"""The autoencoder on real digits: reconstruction error falls, PNGs are written, the encoder extracts features."""

from __future__ import annotations

import json

import numpy as np
from hydra import compose, initialize_config_dir

from jaxdl.apps.autoencoder import is_autoencoder_run, load_autoencoder_run, train_autoencoder
from jaxdl.config import CONF_DIR
from jaxdl.apps.features import LayerFeatures


def test_sparse_autoencoder_learns_and_its_encoder_is_a_feature_extractor(tmp_path):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "autoencoder_train",
            overrides=[
                "data=digits",
                "autoencoder=sparse",
                "autoencoder.code_dim=16",
                "autoencoder.width=8",
                "trainer.epochs=3",
                "trainer.batch_size=32",
                "optimizer.learning_rate=5e-3",
                "trainer.progress=false",
            ],
        )
    summary = train_autoencoder(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val/mse"] < 0.7 * records[0]["val/mse"]
    pixels = np.asarray(load_autoencoder_run(tmp_path).dataset.test.images, np.float32) / 255.0
    mean_image_mse = float(np.mean((pixels - pixels.mean(0)) ** 2))
    assert summary["test/mse"] < mean_image_mse  # better than predicting the average digit
    assert (tmp_path / "reconstructions.png").stat().st_size > 0
    assert len(list((tmp_path / "reconstructions").glob("epoch_*.png"))) == 3
    assert is_autoencoder_run(tmp_path)
    run = load_autoencoder_run(tmp_path)
    codes = LayerFeatures(run.model, run.preprocess, "encoder")(run.dataset.test.images)
    assert codes.shape == (len(run.dataset.test), 16) and (codes >= 0).all() and codes.std() > 0
