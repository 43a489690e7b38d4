"""Quantization through qwix: post-training (weights only, or weights + activations, dynamic or
static with a calibration set) and quantization-aware training, with rules by module path.

Rules come from a recipe's `quantize.rules`, first match wins (qwix's precedence):

    rules:
      - {module_path: "conv1|head"}                      # no `weights`: stays float
      - {module_path: ".*", weights: int8, activations: int8, static: true}

qwix's PTQ convolution quantizes weights only together with activations; weights-only
convolutions here keep the int8/int4 kernel and per-channel scales that qwix computes
and run the convolution on the dequantized kernel, which is what weight-only
quantization means numerically.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import qwix
from flax import nnx
from qwix._src.core import conv_general  # private: only the versions in QWIX_TESTED (pyproject pins them)
from qwix._src.providers import ptq
from qwix._src.utils import flax_util

from jaxdl.errors import ConfigError

# The qwix releases whose private modules above this code was tested with; tests/test_compress_storage.py
# fails with a clear message on any other, and pyproject.toml admits only these.
QWIX_TESTED = ("0.1.8",)

QTYPES = {"int8": jnp.int8, "int4": jnp.int4}
RULE_KEYS = ("module_path", "weights", "activations", "static", "op_names")


def _qtype(value: Any, what: str):
    if value is None:
        return None
    if str(value) not in QTYPES:
        raise ConfigError(f"quantize rule {what} must be one of {', '.join(QTYPES)} or null, got '{value}'")
    return QTYPES[str(value)]


def rules_from_config(rules: Sequence[Mapping[str, Any]]) -> list[qwix.QuantizationRule]:
    """qwix rules from config dicts (module_path regex, weights, activations, static)."""
    if not rules:
        raise ConfigError("quantize.rules is empty; add e.g. {module_path: '.*', weights: int8}")
    out = []
    for rule in rules:
        rule = dict(rule)
        unknown = sorted(set(rule) - set(RULE_KEYS))
        if unknown:
            raise ConfigError(
                f"quantize rule has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(RULE_KEYS)}"
            )
        weights, acts = _qtype(rule.get("weights"), "weights"), _qtype(rule.get("activations"), "activations")
        if acts is not None and weights is None:
            raise ConfigError(
                f"quantize rule for '{rule.get('module_path', '.*')}' quantizes activations but not weights; set weights too"
            )
        static = bool(rule.get("static", False))
        if static and acts is None:
            raise ConfigError("quantize rule has static: true but no activations type; static scales are for activations")
        out.append(
            qwix.QuantizationRule(
                module_path=str(rule.get("module_path", ".*")),
                op_names=tuple(rule.get("op_names") or ()),
                weight_qtype=weights,
                act_qtype=acts,
                act_static_scale=static if acts is not None else None,
            )
        )
    return out


class PtqProvider(qwix.PtqProvider):
    """qwix PTQ, plus weights-only convolutions (qwix's PTQ conv requires quantized activations)."""

    def conv_general_dilated(
        self,
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=None,
        rhs_dilation=None,
        dimension_numbers=None,
        feature_group_count=1,
        batch_group_count=1,
        precision=None,
        preferred_element_type=None,
        out_sharding=None,
    ):
        rule, _ = self._get_current_rule_and_op_id("conv_general_dilated", only_rule=True)
        float_conv = lambda kernel: jax.lax.conv_general_dilated(
            lhs,
            kernel,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            batch_group_count=batch_group_count,
            precision=precision,
            preferred_element_type=preferred_element_type,
        )
        if rule is None or rule.weight_qtype is None or rule.act_qtype is not None:
            return super().conv_general_dilated(
                lhs,
                rhs,
                window_strides,
                padding,
                lhs_dilation,
                rhs_dilation,
                dimension_numbers,
                feature_group_count,
                batch_group_count,
                precision,
                preferred_element_type,
                out_sharding,
            )
        if isinstance(rhs, ptq.WithAux):
            qkernel = rhs.array
        else:
            numbers = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            how = conv_general.get_how_to_quantize(
                dimension_numbers=numbers,
                for_lhs=False,
                qtype=rule.weight_qtype,
                calibration_method=rule.weight_calibration_method,
            )
            qkernel = ptq.create_quantized_param(flax_util.find_param(rhs), rhs, how).array
        return float_conv(qwix.dequantize(qkernel).astype(lhs.dtype))


def post_training(model: nnx.Module, rules: Sequence[qwix.QuantizationRule], calibration: jax.Array) -> nnx.Module:
    """A PTQ copy of `model` (eval mode): weights become int + per-channel scales; static activation
    scales are the batch-mean of per-example absmax over the preprocessed `calibration` inputs."""
    model.eval()
    quantized = qwix.quantize_model(model, PtqProvider(rules), calibration)
    quantized.eval()
    return quantized


def quantization_aware(model: nnx.Module, rules: Sequence[qwix.QuantizationRule], sample: jax.Array) -> nnx.Module:
    """A QAT copy of a trained float model: fake-quantized forward pass, float weights that train."""
    return qwix.quantize_model(model, qwix.QtProvider(rules), sample)


def dequantized(quantized: nnx.Module, float_model: nnx.Module) -> nnx.Module:
    """`float_model` (same architecture) with the quantized model's weights dequantized into it."""
    values = {}
    for path, leaf in nnx.to_flat_state(nnx.state(quantized)):
        values[path] = leaf
    state = nnx.state(float_model)
    flat = []
    for path, var in nnx.to_flat_state(state):
        qarray = values.get((*path, "array", "qvalue")), values.get((*path, "array", "scale"))
        if qarray[0] is not None:
            var = var.replace(qwix.dequantize(qwix.QArray(qarray[0][...], qarray[1][...])).astype(var[...].dtype))
        elif path in values:
            var = var.replace(values[path][...])
        flat.append((path, var))
    nnx.update(float_model, nnx.from_flat_state(flat))
    return float_model
