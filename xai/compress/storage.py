"""The compressed checkpoint: our own versioned format on top of Orbax.

A directory holding

    compressed.json   manifest: format name and version, one entry per tensor (path, shape,
                      dtype, encoding, SHA-256 of what was stored), the source run and step
    config.yaml       the training config (with `model.channels` when channels were removed)
    recipe.yaml       the compression recipe (its quantize rules rebuild the quantized model)
    arrays/           an Orbax checkpoint of the encoded tensors

Encodings: `raw` (the tensor's own dtype: int8 values, per-channel float32 scales, biases),
`int4` (two 4-bit values per byte), and either of them `sparse` (a bitmask of the
nonzeros, packed eight per byte, then only the nonzero values), chosen whenever it is
smaller. qwix's in-memory layout is not a file format; this is, and it is versioned.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from omegaconf import DictConfig, OmegaConf

from jaxdl.artifacts import ModelCard
from jaxdl.errors import CheckpointError
from jaxdl.trees import is_key, key_from_data, keys_to_data

FORMAT = "jaxdl-compressed"
VERSION = 1
MANIFEST = "compressed.json"


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Signed 4-bit integers (-8..7), two per byte, low nibble first."""
    nibbles = (np.asarray(values).astype(np.int8).ravel() & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return nibbles[0::2] | (nibbles[1::2] << 4)


def unpack_int4(packed: np.ndarray, count: int) -> np.ndarray:
    nibbles = np.stack([packed & 0xF, packed >> 4], axis=-1).ravel()[:count].astype(np.int8)
    return (nibbles ^ 8) - 8  # sign-extend 4 bits


def _is_int4(value: np.ndarray) -> bool:
    return value.dtype.name == "int4"


def encode(value: np.ndarray) -> tuple[str, bool, dict[str, np.ndarray]]:
    """(encoding, sparse, stored arrays) for one tensor, picking sparse when it is smaller."""
    encoding = "int4" if _is_int4(value) else "raw"
    dense_bytes = (value.size + 1) // 2 if encoding == "int4" else value.nbytes
    nonzero = np.asarray(value != 0).ravel()
    count = int(nonzero.sum())
    sparse_bytes = (value.size + 7) // 8 + ((count + 1) // 2 if encoding == "int4" else count * value.dtype.itemsize)
    sparse = value.ndim > 0 and sparse_bytes < dense_bytes
    values = value.ravel()[nonzero] if sparse else value
    stored = {"values": pack_int4(values) if encoding == "int4" else np.ascontiguousarray(values)}
    if sparse:
        stored["mask"] = np.packbits(nonzero)
        if count == 0:  # Orbax stores no empty arrays; an all-zero tensor is its mask alone
            del stored["values"]
    return encoding, sparse, stored


def decode(entry: Mapping[str, Any], stored: Mapping[str, np.ndarray]) -> np.ndarray:
    shape, size = tuple(entry["shape"]), int(np.prod(entry["shape"], dtype=np.int64))
    if entry["sparse"]:
        nonzero = np.unpackbits(stored["mask"], count=size).astype(bool)
        dense = np.zeros(size, np.int8 if entry["encoding"] == "int4" else np.dtype(entry["dtype"]))
        if "values" in stored:
            values = stored["values"]
            dense[nonzero] = unpack_int4(values, int(nonzero.sum())) if entry["encoding"] == "int4" else values
        return dense.reshape(shape)
    values = stored["values"]
    if entry["encoding"] == "int4":
        return unpack_int4(values, size).reshape(shape)
    return np.asarray(values).reshape(shape)


def _digest(stored: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(stored):
        array = np.ascontiguousarray(stored[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _plain(value: Any) -> np.ndarray:
    """A host array; typed PRNG keys (NNX RNG streams) become their uint32 data."""
    return np.asarray(jax.device_get(keys_to_data(value)))


def save_compressed(
    directory: str | Path,
    model: nnx.Module,
    cfg: DictConfig,
    recipe: Mapping[str, Any],
    card: ModelCard,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write `model`'s full state (quantized or float) in the compressed format with its model card; returns the directory."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    entries, arrays = [], {}
    for i, (path, var) in enumerate(nnx.to_flat_state(nnx.state(model))):
        value = _plain(var[...])
        encoding, sparse, stored = encode(value)
        key = f"t{i}"
        arrays[key] = stored
        entries.append(
            {
                "path": "/".join(map(str, path)),
                "key": key,
                "shape": list(value.shape),
                "dtype": "int4" if _is_int4(value) else value.dtype.name,
                "encoding": encoding,
                "sparse": sparse,
                "sha256": _digest(stored),
            }
        )
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / "arrays", arrays, force=True)
    (directory / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (directory / "recipe.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(dict(recipe))))
    manifest = {"format": FORMAT, "version": VERSION, "source": dict(source or {}), "tensors": entries}
    card.write(directory)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return directory


def find_compressed(path: str | Path) -> Path | None:
    """The compressed checkpoint at `path`, or in its `checkpoint/` (a jaxdl-compress output directory)."""
    path = Path(path).expanduser().absolute()
    for candidate in (path, path / "checkpoint"):
        if (candidate / MANIFEST).is_file():
            return candidate
    return None


def read_manifest(directory: Path) -> dict:
    """The manifest, refusing other formats, other versions and unreadable files with one line."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"compressed checkpoint {directory} is damaged: {MANIFEST} is unreadable ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{directory / MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise CheckpointError(
            f"compressed checkpoint {directory} has format version {manifest.get('version')}, but this jaxdl "
            f"reads version {VERSION}; export it again with this version's jaxdl-compress"
        )
    return manifest


def read_tensors(directory: Path, manifest: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """{path: decoded tensor}, after checking every stored array against its SHA-256."""
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            arrays = checkpointer.restore(directory / "arrays")
    except Exception as err:  # noqa: BLE001 - any Orbax failure here means missing or damaged files
        raise CheckpointError(
            f"compressed checkpoint {directory} is damaged: its arrays cannot be read ({type(err).__name__})"
        ) from err
    tensors = {}
    for entry in manifest["tensors"]:
        stored = {name: np.asarray(a) for name, a in (arrays.get(entry["key"]) or {}).items()}
        if _digest(stored) != entry["sha256"]:
            raise CheckpointError(f"compressed checkpoint {directory} is damaged: tensor '{entry['path']}' fails its checksum")
        tensors[entry["path"]] = decode(entry, stored)
    return tensors


def load_state_into(model: nnx.Module, tensors: Mapping[str, np.ndarray], where: Path) -> nnx.Module:
    """Put decoded tensors into a model of the same structure, refusing mismatches with one line."""
    flat = nnx.to_flat_state(nnx.state(model))
    names = ["/".join(map(str, path)) for path, _ in flat]
    missing, extra = sorted(set(names) - set(tensors)), sorted(set(tensors) - set(names))
    if missing or extra:
        raise CheckpointError(
            f"compressed checkpoint {where} does not match its model (missing {missing[:3]}, unexpected {extra[:3]}); "
            "it was written by a different model or recipe"
        )
    updated = []
    for name, (path, var) in zip(names, flat):
        current, value = var[...], tensors[name]
        expected = _plain(current).shape
        if expected != value.shape:
            raise CheckpointError(
                f"compressed checkpoint {where}: '{name}' has shape {value.shape}, the model expects {expected}"
            )
        if is_key(current):
            new = key_from_data(value, current)
        else:
            new = jax.numpy.asarray(value, dtype=current.dtype)
        updated.append((path, var.replace(new)))
    nnx.update(model, nnx.from_flat_state(updated))
    return model
