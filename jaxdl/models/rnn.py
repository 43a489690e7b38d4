"""LSTM and GRU sequence classifiers: images read row by row, 1-D signals step by step.

`model(x, lengths=...)` masks variable-length sequences: steps at or after a sequence's
length change nothing (the forward direction stops there, the backward one starts there).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.errors import ConfigError
from jaxdl.models.registry import InputSpec, register
from jaxdl.models.sequences import as_sequence, sequence_shape

CELLS = {"lstm": nnx.LSTMCell, "gru": nnx.GRUCell}


class RecurrentClassifier(nnx.Module):
    """Stacked (optionally bidirectional) recurrent `layers`, then a dense `head` on the final states."""

    def __init__(
        self,
        spec: InputSpec,
        cell: str,
        *,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        if num_layers < 1:
            raise ConfigError(f"model.num_layers must be at least 1, got {num_layers}")
        make = lambda cin: nnx.RNN(CELLS[cell](cin, hidden, dtype=dtype, rngs=rngs), rngs=False)
        layers, cin = [], sequence_shape(spec)[1]
        for _ in range(num_layers):
            layers.append(nnx.Bidirectional(make(cin), make(cin), rngs=False) if bidirectional else make(cin))
            cin = hidden * (2 if bidirectional else 1)
        self.layers = nnx.List(layers)
        self.hidden, self.bidirectional = hidden, bidirectional
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(cin, spec.num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
        seq = as_sequence(x)
        n, steps = seq.shape[:2]
        if lengths is None:
            lengths = jnp.zeros_like(seq[:, 0, 0], jnp.int32) + steps
        for i, layer in enumerate(self.layers):
            if i:
                seq = self.dropout(seq)
            seq = layer(seq, initial_carry=_zero_carry(layer, seq.shape), seq_lengths=lengths)
        last = jnp.take_along_axis(seq, (lengths - 1)[:, None, None], axis=1)[:, 0]  # the forward direction's final state
        if self.bidirectional:  # the backward direction ends at step 0
            last = jnp.concatenate([last[:, : self.hidden], seq[:, 0, self.hidden :]], axis=-1)
        return self.head(self.dropout(last))


def _zero_carry(layer: nnx.RNN | nnx.Bidirectional, shape: tuple[int, ...]) -> Any:
    """The all-zero initial state (cells initialise it with zeros; the key is only a formality)."""
    cells = [layer.forward_rnn.cell, layer.backward_rnn.cell] if isinstance(layer, nnx.Bidirectional) else [layer.cell]
    carries = [cell.initialize_carry((shape[0], shape[-1]), nnx.Rngs(0)) for cell in cells]
    return tuple(carries) if len(carries) > 1 else carries[0]


def _factory(cell: str):
    def build(
        spec: InputSpec,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype: Any = None,
        rngs: nnx.Rngs = None,
    ) -> RecurrentClassifier:
        return RecurrentClassifier(
            spec, cell, hidden=hidden, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout, dtype=dtype, rngs=rngs
        )

    build.__doc__ = f"{cell.upper()} classifier over image rows or signal steps; `bidirectional: true` for a Bi{cell.upper()}."
    return build


for _cell in CELLS:
    register(_cell)(_factory(_cell))
