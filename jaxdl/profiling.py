"""Where a train step's time goes: a `jax.profiler` trace of a few steps, and its most expensive ops.

    step = TracedSteps(step, run_dir / "profile", skip=2, count=5)   # trainer.profile=true
    print(format_top_ops(top_ops(run_dir / "profile")))

The trace directory opens in TensorBoard's profile plugin (`tensorboard --logdir DIR`) and in
Perfetto (`perfetto_trace.json.gz`); `top_ops` reads the latter, so a summary needs neither.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import jax

# Trace lines that repeat what the op lines show (a GPU's module and step lines span its ops).
_SPANNING_THREADS = ("XLA Modules", "Steps", "Framework Name Scope", "Framework Ops", "Source code")
_MARKERS = ("end: ", "ThreadpoolListener", "ThunkExecutor", "SlinkyThreadPool")


class TracedSteps:
    """`step`, tracing its calls skip+1 .. skip+count into `trace_dir` (the first calls compile, so are left out).

    The trace stops once the last traced step's outputs are ready, so it holds the device work too;
    `finish()` stops it early when training ends first. The top ops go to `top_ops.txt` beside it."""

    def __init__(self, step: Callable, trace_dir: Path, skip: int = 2, count: int = 5):
        self.step, self.trace_dir, self.skip, self.count = step, Path(trace_dir), skip, count
        self.calls, self.tracing = 0, False

    def __call__(self, *args: Any):
        self.calls += 1
        if self.calls == self.skip + 1:
            jax.profiler.start_trace(str(self.trace_dir), create_perfetto_trace=True)
            self.tracing = True
        out = self.step(*args)
        if self.calls == self.skip + self.count:
            jax.block_until_ready(out)
            self.finish()
        return out

    def finish(self) -> None:
        if self.tracing:
            jax.profiler.stop_trace()
            self.tracing = False
            (self.trace_dir / "top_ops.txt").write_text(format_top_ops(top_ops(self.trace_dir)) + "\n")


def _op_threads(events: list[dict]) -> set[tuple[Any, Any]]:
    """(pid, tid) of the trace lines that hold the executed ops: a device's op lines, else XLA's CPU threads."""
    processes = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    device = {key: name for key, name in threads.items() if processes.get(key[0], "").startswith("/device:")}
    if device:
        ops = {key for key, name in device.items() if name == "XLA Ops"}
        return ops or {key for key, name in device.items() if name not in _SPANNING_THREADS}
    return {key for key, name in threads.items() if "XLA" in name or "Eigen" in name}


def top_ops(trace_dir: str | Path, limit: int = 15) -> list[tuple[str, float, float]]:
    """(op name, total ms, share of the traced op time) of the newest trace under `trace_dir`, largest first."""
    traces = sorted(Path(trace_dir).glob("**/perfetto_trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not traces:
        return []
    with gzip.open(traces[-1]) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    lines = _op_threads(events)
    total: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in lines and not e["name"].startswith(_MARKERS):
            total[e["name"]] += e.get("dur", 0.0) / 1000.0
    overall = sum(total.values()) or 1.0
    ranked = sorted(total.items(), key=lambda item: -item[1])[:limit]
    return [(name, ms, ms / overall) for name, ms in ranked]


def format_top_ops(ops: list[tuple[str, float, float]]) -> str:
    lines = [f"{'ms':>10}  {'share':>6}  op"]
    lines += [f"{ms:10.3f}  {share:6.1%}  {name}" for name, ms, share in ops]
    return "\n".join(lines)
