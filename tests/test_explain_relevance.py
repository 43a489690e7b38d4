"""Chefer et al.'s gradient-weighted relevance equals a PyTorch implementation of the paper on a timm ViT:
attention and its gradient read with hooks (as the authors' code does), on the same weights imported into jaxdl."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from jaxdl.models.registry import InputSpec  # noqa: E402
from jaxdl.models.transformer import vit  # noqa: E402
from jaxdl.pretrained import import_model  # noqa: E402
from jaxdl.pretrained.mapping import load_state_dict  # noqa: E402
from jaxdl.pretrained.torch_io import numpy_state_dict  # noqa: E402
from jaxdl.pretrained.vit import timm_names  # noqa: E402
from xai.explain.methods import build_method  # noqa: E402
from xai.explain.relevance import GradientRelevance  # noqa: E402


def relevance_as_published(model, x: torch.Tensor, targets: np.ndarray) -> np.ndarray:
    """R = I; per block R += mean_heads(clamp(dA * A, min=0)) @ R; the class token's row over the patches."""
    attentions, gradients = [], []

    def keep(module, args, out):
        attentions.append(out)
        out.register_hook(gradients.append)

    hooks = []
    for block in model.blocks:
        block.attn.fused_attn = False
        hooks.append(block.attn.attn_drop.register_forward_hook(keep))
    logits = model(x)
    logits[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    for hook in hooks:
        hook.remove()
    gradients = gradients[::-1]  # backward visits the last block first
    tokens = x.new_zeros(1).new_tensor(np.eye(attentions[0].shape[-1])).expand(len(x), -1, -1)
    total = tokens.double()
    for a, g in zip(attentions, gradients):
        cam = (g * a).clamp(min=0).mean(1).double()
        total = total + cam @ total
    return total[:, 0, 1:].detach().numpy()


def timm_vit(size: int, **options):
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=size, **options).eval()
    with torch.no_grad():  # sharper attention than a fresh init's almost uniform one
        for block in model.blocks:
            block.attn.qkv.weight.mul_(4)
    return model


def check(model, module, size: int, grid: int, preprocess=None) -> None:
    images = np.random.default_rng(0).uniform(size=(2, size, size, 3)).astype(np.float32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    explainer = GradientRelevance(module, preprocess=preprocess)
    weights, gradients, targets = explainer._inputs(explainer.probe.state, images, np.array([-1, 3]))
    assert targets[1] == 3 and targets[0] == np.argmax(model(x).detach().numpy()[0])
    theirs = relevance_as_published(model, x, np.asarray(targets))
    ours = np.asarray(explainer(images, np.array([-1, 3])))
    assert not any(block.attention.record for block in module.blocks)  # the model itself keeps fused attention
    assert ours.shape == (2, size, size)
    up = torch.nn.functional.interpolate(torch.from_numpy(theirs).reshape(2, 1, grid, grid), size, mode="bilinear")
    for a, b, full in zip(ours, theirs, up[:, 0].numpy()):
        assert np.corrcoef(a.ravel(), full.ravel())[0, 1] >= 0.999
        assert b.std() > 0.05 * b.mean()  # a real map, not a constant one


def test_relevance_of_a_zoo_vit_equals_the_papers_formula_in_pytorch():
    model = timm_vit(32, patch_size=8, embed_dim=32, depth=3, num_heads=4, mlp_ratio=2.0, num_classes=5)
    module = vit(InputSpec((32, 32), 3, 5), patch=8, dim=32, depth=3, heads=4, mlp_dim=64, exact_gelu=True, rngs=nnx.Rngs(0))
    load_state_dict(module, numpy_state_dict(model.state_dict()), timm_names(module))
    module.eval()
    check(model, module, 32, 4)
    assert type(build_method("gradient_relevance", module, None, {})) is GradientRelevance


def test_relevance_of_an_imported_vit_b16_equals_pytorch():
    model = timm_vit(64, num_classes=10)
    module, card = import_model("timm:vit_base_patch16_224", torch_model=model, input_size=64, mean=(0,) * 3, std=(1,) * 3)
    check(model, module, 64, 4, preprocess=lambda x: x)
