"""Readers for what trackers leave on disk, independent of jaxdl's writers (test helpers)."""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32768  # the LevelDB log format W&B's .wandb files use: 32 KiB blocks, 7-byte record headers
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list:
    """Every `Record` protocol buffer in a W&B run file (`run-<id>.wandb`)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", path
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += room
            continue
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            records.append(Record.FromString(pending))
    return records


def wandb_history(run_dir: Path) -> tuple[set[str], list[tuple[int, dict]]]:
    """(the run ids, [(step, {key: value})]) of every offline W&B run file under `run_dir/wandb`."""
    import json

    ids, history = set(), []
    for path in sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")):
        ids.add(path.stem.removeprefix("run-"))
        for record in wandb_records(path):
            if record.HasField("history"):
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                history.append((record.history.step.num, {k: v for k, v in items.items() if "/" in k}))
    return ids, history
