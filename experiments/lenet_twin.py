"""The PyTorch twin of jaxdl's modern LeNet-5, holding the same weights: the reference model of
experiments/reference_agreement.py and of the captum agreement tests."""

from __future__ import annotations

import numpy as np
import torch
from flax import nnx
from torch import nn


class TorchLeNet5(nn.Module):
    """jaxdl's modern LeNet-5 on images in [0, 1]: normalise, conv-ReLU-pool twice (`features`), dense 500, head.
    ReLUs are modules so guided backpropagation can swap them."""

    def __init__(self, channels: int, classes: int, filters: tuple[int, int], hidden: int, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(np.asarray(mean, np.float32).reshape(1, -1, 1, 1)))
        self.register_buffer("std", torch.tensor(np.asarray(std, np.float32).reshape(1, -1, 1, 1)))
        self.features = nn.Sequential(
            nn.Conv2d(channels, filters[0], 5),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(filters[0], filters[1], 5),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.hidden, self.relu, self.head = nn.Linear(16 * filters[1], hidden), nn.ReLU(), nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features((x - self.mean) / self.std)
        return self.head(self.relu(self.hidden(f.permute(0, 2, 3, 1).reshape(len(x), -1))))  # flatten in NHWC order


def torch_twin(model: nnx.Module, preprocess) -> TorchLeNet5:
    """The twin with jaxdl's weights (HWIO -> OIHW kernels, (in, out) -> (out, in) matrices)."""
    p = lambda param: torch.from_numpy(np.array(param[...], np.float32))
    twin = TorchLeNet5(
        model.conv1.in_features,
        model.head.out_features,
        (model.conv1.out_features, model.conv2.out_features),
        model.hidden[0].out_features,
        preprocess.mean,
        preprocess.std,
    )
    with torch.no_grad():
        for conv, ours in ((twin.features[0], model.conv1), (twin.features[3], model.conv2)):
            conv.weight.copy_(p(ours.kernel).permute(3, 2, 0, 1))
            conv.bias.copy_(p(ours.bias))
        for linear, ours in ((twin.hidden, model.hidden[0]), (twin.head, model.head)):
            linear.weight.copy_(p(ours.kernel).T)
            linear.bias.copy_(p(ours.bias))
    return twin.eval()
