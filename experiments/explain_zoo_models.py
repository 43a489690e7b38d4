"""Grad-CAM on the zoo's ResNet-18, LSTM and ViT (random weights): default target layers and map shapes.

python experiments/explain_zoo_models.py
"""

import time
import numpy as np
from jaxdl import models
from xai.explain.probe import layer_names
from xai.explain.methods import default_target_layer
from xai.explain.cam import GradCAM, token_grid
from xai.explain.probe import Probe

x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
for name in ["resnet18", "lstm", "vit"]:
    t = time.time()
    try:
        m = models.build({"name": name}, models.InputSpec((28, 28), 1, 10), seed=0)
        m.eval()
        names = layer_names(m)
        layer = default_target_layer(m, None, x)
        calls = Probe(m, names).calls(x[:1])
        print(name, "default layer", layer, "| last calls:", calls[-4:])
        opts = {"reshape": token_grid()} if name == "vit" else {}
        if name == "vit":  # the last block's input: the head reads only the class token after it
            layer = "blocks.4"
        maps = GradCAM(m, layer, **opts)(x, None)
        print("  ", name, layer, maps.shape, "max", float(maps.max()), "std", float(maps.std()), f"{time.time() - t:.1f}s")
    except Exception as e:
        print(name, "FAIL", type(e).__name__, str(e)[:300])
