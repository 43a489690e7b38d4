"""Structured channel pruning: remove whole filters and rebuild a smaller NNX model.

A model's channels are described by `ChannelGroup`s: the layers whose output features
are one set of channels (several producers when a residual connection adds them, so
they are pruned together and the block stays consistent), the normalisations that
follow them, and the layers that read them. Each model registers one rule that lists
its groups (`CHANNEL_RULES`); everything else is generic.

Ranking is by the L1 or L2 norm of the producers' filters, or the |scale| of their
batch norms. Surviving channels are sliced out of every array that touches them, so
parameter count, FLOPs and latency drop for real.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdl.errors import ConfigError
from jaxdl.registry import Registry
from jaxdl.trees import layer_path, module_at as find_module


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """Channels kept or removed together. Paths are dotted module paths such as 'conv1' or 'hidden.0'."""

    producers: tuple[str, ...]
    norms: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.producers[0]


CHANNEL_RULES: Registry[Callable[[nnx.Module], list[ChannelGroup]]] = Registry("channel-pruning rule")
CRITERIA = ("l1", "l2", "bn")


def _chain(paths: Sequence[str]) -> list[ChannelGroup]:
    """Groups of a plain stack: each layer's outputs are read by the next one."""
    return [ChannelGroup((a,), consumers=(b,)) for a, b in zip(paths, paths[1:])]


@CHANNEL_RULES.register("lenet5")
@CHANNEL_RULES.register("lenet5_classic")
def _lenet(model: nnx.Module) -> list[ChannelGroup]:
    """conv1 -> conv2 -> (flatten) -> hidden dense layers -> head; the head's outputs are the classes."""
    return _chain(["conv1", "conv2", *(f"hidden.{i}" for i in range(len(model.hidden))), "head"])


@CHANNEL_RULES.register("resnet18")
@CHANNEL_RULES.register("resnet34")
@CHANNEL_RULES.register("resnet50")
def _resnet(model: nnx.Module) -> list[ChannelGroup]:
    """Inside a block, each conv's outputs are read by the next conv. Between blocks, the residual
    stream is one group: every block output, projection shortcut and the stem that add into it
    keep the same channels, read by the next blocks' first convs, projections and the head."""
    groups = []
    producers, norms, consumers = ["stem.0.conv"], ["stem.0.norm"], []
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            prefix = f"stages.{i}.{j}"
            convs = [f"{prefix}.{name}" for name in ("conv1", "conv2", "conv3") if hasattr(block, name)]
            consumers.append(f"{convs[0]}.conv")
            if block.shortcut is not None:  # a projection ends the incoming stream and starts a new one
                groups.append(ChannelGroup(tuple(producers), tuple(norms), (*consumers, f"{prefix}.shortcut.conv")))
                producers, norms, consumers = [f"{prefix}.shortcut.conv"], [f"{prefix}.shortcut.norm"], []
            groups += [ChannelGroup((f"{a}.conv",), (f"{a}.norm",), (f"{b}.conv",)) for a, b in zip(convs, convs[1:])]
            producers.append(f"{convs[-1]}.conv")
            norms.append(f"{convs[-1]}.norm")
    return [*groups, ChannelGroup(tuple(producers), tuple(norms), (*consumers, "head"))]


def module_at(model: nnx.Module, path: str) -> nnx.Module:
    node = find_module(model, path)
    if node is None:
        raise ConfigError(f"the model has no module '{path}'; check the channel-pruning rule of this model")
    return node


def _width(module: nnx.Module) -> int:
    return module.out_features if isinstance(module, (nnx.Conv, nnx.Linear)) else module.num_features


def _filters(module: nnx.Module) -> jnp.ndarray:
    """(fan_in, out) view of a producer's kernel."""
    kernel = module.kernel[...]
    return kernel.reshape(-1, kernel.shape[-1])


def channel_scores(model: nnx.Module, group: ChannelGroup, criterion: str) -> jnp.ndarray:
    """One importance score per channel of `group`, summed over its producers (or norms)."""
    if criterion not in CRITERIA:
        raise ConfigError(f"channel criterion must be one of {', '.join(CRITERIA)}, got '{criterion}'")
    if criterion == "bn":
        if not group.norms:
            raise ConfigError(f"criterion 'bn' needs a batch norm after '{group.name}'; use l1 or l2")
        return sum(jnp.abs(module_at(model, p).scale[...]) for p in group.norms)
    order = 1 if criterion == "l1" else 2
    return sum(jnp.linalg.norm(_filters(module_at(model, p)), ord=order, axis=0) for p in group.producers)


def _slice_param(module: nnx.Module, name: str, axis: int, keep: np.ndarray, fold: int = 1) -> None:
    """Keep `keep` along `axis` of param `name`; `fold` > 1 treats that axis as (positions, channels) (a flatten)."""
    param = getattr(module, name, None)
    if param is None or not isinstance(param, nnx.Variable):
        return
    value = param[...]
    if fold > 1:
        shape = value.shape
        value = value.reshape(*shape[:axis], -1, fold, *shape[axis + 1 :])
        value = jnp.take(value, keep, axis=axis + 1)
        value = value.reshape(*shape[:axis], -1, *shape[axis + 1 :])
    else:
        value = jnp.take(value, keep, axis=axis)
    param.set_value(value)


def _check_supported(module: nnx.Module, path: str) -> None:
    if isinstance(module, nnx.Conv) and module.feature_group_count != 1:
        raise ConfigError(f"channel pruning of grouped convolution '{path}' is not supported")
    if not isinstance(module, (nnx.Conv, nnx.Linear, nnx.BatchNorm, nnx.LayerNorm)):
        raise ConfigError(f"channel pruning does not know how to slice '{path}' ({type(module).__name__})")


def _shrink_outputs(module: nnx.Module, path: str, keep: np.ndarray) -> None:
    _check_supported(module, path)
    if isinstance(module, (nnx.Conv, nnx.Linear)):
        _slice_param(module, "kernel", module.kernel[...].ndim - 1, keep)
        _slice_param(module, "bias", 0, keep)
        module.out_features = len(keep)
        if isinstance(module, nnx.Conv):
            module.kernel_shape = tuple(module.kernel[...].shape)
        return
    for name in ("scale", "bias", "mean", "var"):
        _slice_param(module, name, 0, keep)
    module.num_features = len(keep)


def _shrink_inputs(module: nnx.Module, path: str, keep: np.ndarray, width: int) -> None:
    _check_supported(module, path)
    if isinstance(module, nnx.Conv):
        _slice_param(module, "kernel", module.kernel[...].ndim - 2, keep)
        module.in_features = len(keep)
        module.kernel_shape = tuple(module.kernel[...].shape)
    elif isinstance(module, nnx.Linear):
        fold = module.in_features // width  # a flattened H x W x C feature map feeds the dense layer
        if fold * width != module.in_features:
            raise ConfigError(f"'{path}' has {module.in_features} inputs, not a multiple of the {width} channels feeding it")
        _slice_param(module, "kernel", 0, keep, fold=width if fold > 1 else 1)
        module.in_features = fold * len(keep)
    else:
        raise ConfigError(f"'{path}' cannot consume pruned channels ({type(module).__name__})")


def apply_plan(model: nnx.Module, groups: Sequence[ChannelGroup], keep: Mapping[str, Sequence[int]]) -> nnx.Module:
    """Slice `model` in place so that group `g.name` keeps the channel indices `keep[g.name]`."""
    for group in groups:
        if group.name not in keep:
            continue
        width = _width(module_at(model, group.producers[0]))
        indices = np.asarray(sorted(int(i) for i in keep[group.name]), np.int32)  # NumPy: the model may be abstract
        if len(indices) == 0 or indices[-1] >= width:
            raise ConfigError(f"channel plan for '{group.name}' must keep between 1 and {width} of its channels")
        for path in (*group.producers, *group.norms):
            _shrink_outputs(module_at(model, path), path, indices)
        for path in group.consumers:
            _shrink_inputs(module_at(model, path), path, indices, width)
    return model


def groups_of(model_name: str, model: nnx.Module) -> list[ChannelGroup]:
    """The registered channel groups of a model (ConfigError naming the models that have a rule)."""
    return CHANNEL_RULES.get(model_name)(model)


def select_channels(
    model: nnx.Module,
    groups: Sequence[ChannelGroup],
    fraction: float,
    criterion: str = "l1",
    skip: Sequence[str] = (),
    multiple: int = 1,
) -> dict[str, list[int]]:
    """The indices each group keeps when the lowest-scoring `fraction` of its channels is removed.

    `multiple` rounds the kept count down to a multiple (at least one multiple): CPU and GPU
    convolution kernels are much faster on channel counts like 8, 16, 24 than on 10 or 25."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"channel pruning fraction must be in [0, 1), got {fraction}")
    unknown = sorted(set(skip) - {g.name for g in groups})
    if unknown:
        raise ConfigError(
            f"compress.channels.skip names unknown channel groups {unknown}; "
            f"this model's groups are {sorted(g.name for g in groups)}"
        )
    plan = {}
    for group in groups:
        if group.name in skip:
            continue
        scores = channel_scores(model, group, criterion)
        n_keep = max(1, int(round(len(scores) * (1.0 - fraction))))
        n_keep = min(len(scores), max(multiple, n_keep // multiple * multiple))
        plan[group.name] = sorted(int(i) for i in jnp.argsort(-scores, stable=True)[:n_keep])
    return plan


def widths(model: nnx.Module, groups: Sequence[ChannelGroup]) -> dict[str, int]:
    """{group name: channel count}: what a config needs (`model.channels`) to rebuild this shape."""
    return {g.name: int(_width(module_at(model, g.producers[0]))) for g in groups}


def shrink_to(model: nnx.Module, model_name: str, channels: Mapping[str, int]) -> nnx.Module:
    """A freshly built model cut to the stored widths (weights are loaded afterwards)."""
    groups = groups_of(model_name, model)
    channels = {layer_path(name): n for name, n in channels.items()}  # configs of earlier versions used slashes
    known = {g.name for g in groups}
    unknown = sorted(set(channels) - known)
    if unknown:
        raise ConfigError(f"model.channels names unknown channel groups {unknown}; this model's groups are {sorted(known)}")
    return apply_plan(model, groups, {name: range(int(n)) for name, n in channels.items()})
