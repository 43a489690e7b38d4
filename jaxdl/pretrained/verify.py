"""Check an imported network against its PyTorch original on real photographs (needs the torch extra).

Both see the same uint8 pixels (scikit-image's photographs fitted to the input by the source's
own transform); the torch model gets them normalised as its weights expect, the zoo model
through the artifact's preprocessing (where GoogLeNet's `transform_input` is folded in).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from flax import nnx

from jaxdl.artifacts import LoadedModel, ModelCard
from jaxdl.data.photos import fit_photo

PHOTOS = ("astronaut", "chelsea")

# torchvision constructor options that make a random model look like the pretrained one.
AS_PRETRAINED = {
    "googlenet": {"aux_logits": False, "transform_input": True, "init_weights": True},
    "inception_v3": {"init_weights": True},
}  # aux head kept (not imported); no transform_input
# One timm name per importable timm architecture.
TIMM_TAGS = {"resnet50": "resnet50.a1_in1k", "vit_base_patch16_224": "vit_base_patch16_224.augreg2_in21k_ft_in1k"}


def photos(card: ModelCard, names: Sequence[str] = PHOTOS) -> np.ndarray:
    """(N, H, W, C) uint8: scikit-image's bundled photographs at the model's input."""
    from PIL import Image
    from skimage import data

    return np.stack([fit_photo(Image.fromarray(getattr(data, name)()), card.preprocess, card.spec.channels) for name in names])


def torch_logits(torch_model: Any, images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """PyTorch's logits of uint8 NHWC images normalised with `mean` / `std`, in eval mode."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    torch_model.eval()
    with torch.no_grad():
        return torch_model(x).numpy()


def agreement(
    module: nnx.Module,
    card: ModelCard,
    torch_model: Any,
    mean: Sequence[float],
    std: Sequence[float],
    images: np.ndarray | None = None,
) -> dict[str, Any]:
    """Largest logit gap (absolute and relative to the largest logit) and whether every top-5 is identical."""
    images = photos(card) if images is None else images
    theirs = torch_logits(torch_model, images, mean, std)
    ours = np.asarray(LoadedModel(module, card, None)(images))
    gap, scale = float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())
    top5 = bool((np.argsort(-ours, axis=1)[:, :5] == np.argsort(-theirs, axis=1)[:, :5]).all())
    return {
        "images": len(images),
        "max_abs_gap": gap,
        "max_abs_logit": scale,
        "relative_gap": gap / scale,
        "top5_identical": top5,
    }


def randomise_batchnorm(torch_model: Any, seed: int = 0) -> Any:
    """Random running statistics and affine parameters in every BatchNorm2d (freshly built ones are 0, 1, 1, 0,
    which would hide a wrong eps, a swapped mean / variance or a missing scale)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    uniform = lambda t, lo, hi: t.copy_(lo + (hi - lo) * torch.rand(t.shape, generator=generator))
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                uniform(m.running_mean, -0.5, 0.5), uniform(m.running_var, 0.5, 2.0)
                uniform(m.weight, 0.5, 1.5), uniform(m.bias, -0.2, 0.2)
    return torch_model.eval()


def random_torch_model(source: str, seed: int = 0) -> Any:
    """The torch model of `source` with random weights (no download), random batch-norm statistics and no
    zero-initialised layer (torchvision's ViT head starts at zero, which would make every logit 0)."""
    import torch

    from jaxdl.pretrained.sources import parse_source

    lib, name, _ = parse_source(source)
    torch.manual_seed(seed)
    if lib == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
    else:
        import torchvision

        model = torchvision.models.get_model(name, weights=None, **AS_PRETRAINED.get(name, {}))
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.Linear) and not layer.weight.any():
                layer.weight.normal_(0, 0.02)
    return randomise_batchnorm(model, seed)


def every_source() -> list[str]:
    """One importable source name per architecture (timm ones with a pretrained tag)."""
    from jaxdl.pretrained.sources import TIMM, TORCHVISION

    return [f"torchvision:{name}" for name in TORCHVISION] + [f"timm:{TIMM_TAGS[name]}" for name in TIMM]
