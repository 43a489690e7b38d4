"""TensorBoard event files, written directly: no TensorFlow, no torch.

tensorboardX imports torch when it is installed (1.4 s and 0.6 GB before the first line of
`jaxdl-train`), for scalars only this needs. The format is small and stable: TFRecord framing
(length, masked CRC-32C, payload, masked CRC-32C) around `Event` protocol buffers.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _event(step: int, **fields: bytes) -> bytes:
    """An `Event` with wall_time, step and the given encoded fields (3 file_version, 5 summary, 7 session_log)."""
    body = _field(1, 1, struct.pack("<d", time.time())) + _field(2, 0, _varint(step))
    numbers = {"file_version": 3, "summary": 5, "session_log": 7}
    return body + b"".join(_field(numbers[name], 2, payload) for name, payload in fields.items())


def scalar_summary(tag: str, value: float) -> bytes:
    """A `Summary` with one `Value {tag, simple_value}`."""
    return _field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value)))


class EventWriter:
    """Scalars into `<logdir>/events.out.tfevents.*`. `purge_step`: a resumed run tells TensorBoard to drop
    the events an earlier attempt wrote from that step on (the same `SessionLog.START` tensorboardX writes)."""

    def __init__(self, logdir: str | Path, purge_step: int | None = None):
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.jaxdl"
        self.path = logdir / name
        self._file = self.path.open("ab")
        self._write(_event(0, file_version=b"brain.Event:2"))
        if purge_step is not None:
            self._write(_event(purge_step, session_log=_field(1, 0, _varint(1))))
        self.flush()

    def _write(self, record: bytes) -> None:
        length = struct.pack("<Q", len(record))
        self._file.write(length + struct.pack("<I", masked_crc(length)) + record + struct.pack("<I", masked_crc(record)))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._write(_event(step, summary=scalar_summary(tag, float(value))))

    def add_summary(self, summary: bytes, step: int) -> None:
        """A serialized `Summary` protocol buffer (images, the HParams plugin's session records)."""
        self._write(_event(step, summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
