"""Orbax checkpoints of a run: the last N and the best by a validation metric, each verified on load.

Orbax writes each step to a temporary directory and renames it when complete, so a
run killed mid-save leaves the previous checkpoint intact. Each step also stores its
epoch metrics (which pick the best step: we keep that choice ourselves rather than
through Orbax's `best_fn`, so the metrics are never silently dropped). A checkpoint saved
inside an epoch also stores where the input stands (a `data` JSON item: e.g. the Grain
iterator state); it has no metrics, so it is never the best.

Every step carries a checksum manifest (`checksums`) that lists a SHA-256 of every array
and of every JSON item a restore reads: `meta` (step, epoch, running totals, metrics),
`data`, and the identity of the run's model card. A restore (resume or load) refuses the
step when an entry differs, is missing or is unknown, so a flipped bit, a truncated or
deleted file, a renamed key or an empty manifest is damage, never a silent skip. Only
steps whose `meta` verifies can be the best.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import logging
import math
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxdl import watchdog
from jaxdl.errors import CheckpointError, RunRefused
from jaxdl.logs import file_only_from_now, to_file_only
from jaxdl.trees import keys_from_data, keys_to_data, map_named, named_leaves, path_name

log = logging.getLogger("jaxdl")
BEST_MODES = ("max", "min")
# The manifest entries of the JSON items (array names never start with @).
META_CHECKSUM, DATA_CHECKSUM, CARD_CHECKSUM = "@meta", "@data", "@card"
# What Orbax and TensorStore log when a write fails (a full disk: hundreds of lines): to run.log only.
LIBRARY_LOGGERS = ("absl", "orbax", "asyncio", "tensorstore")
DAMAGED = "damaged_checkpoints"  # beside checkpoints/: steps found damaged on resume, kept for inspection


def as_numpy(x: Any) -> np.ndarray:
    """Host copy of an array, also of one replicated over several processes."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_data(0)
    return np.asarray(jax.device_get(x))


def checksums(tree: Any) -> dict[str, str]:
    """{leaf name: SHA-256 of its bytes} of a tree of arrays."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_name(path): hashlib.sha256(np.ascontiguousarray(as_numpy(leaf)).tobytes()).hexdigest() for path, leaf in flat}


def json_checksum(value: Any) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def verify(tree: Any, expected: dict[str, str], where: Path) -> None:
    """Refuse arrays whose bytes differ from those written (a flipped bit, a garbled file), and a manifest
    that does not list exactly these arrays (an entry missing or renamed is damage, not a reason to skip)."""
    actual = checksums(tree)
    listed = {name: digest for name, digest in expected.items() if not name.startswith("@")}
    missing, unknown = sorted(set(actual) - set(listed)), sorted(set(listed) - set(actual))
    if missing or unknown:
        what = f"lacks {len(missing)} array(s) (first: {missing[0]})" if missing else f"lists unknown {unknown[0]}"
        raise CheckpointError(f"checkpoint {where} is damaged: its checksum manifest {what}")
    bad = [name for name, digest in actual.items() if listed[name] != digest]
    if bad:
        raise CheckpointError(
            f"checkpoint {where} is damaged: {len(bad)} array(s) differ from what was written (first: {bad[0]})"
        )


def card_identity(card_json: dict) -> dict:
    """What of a model card rebuilds and feeds the model (its provenance, e.g. a creation time, left out)."""
    return {key: value for key, value in card_json.items() if key != "provenance"}


def verify_meta(where: Path, step: int, expected: dict, meta: Any) -> None:
    """Refuse a step whose `meta` differs from its manifest or names another step."""
    if isinstance(meta, dict) and "step" not in meta and META_CHECKSUM not in expected and expected:  # older format
        raise CheckpointError(
            f"checkpoint {where} was written by a jaxdl without meta checksums and cannot be verified; "
            "train again (or load it with the jaxdl that wrote it)"
        )
    if not isinstance(meta, dict) or expected.get(META_CHECKSUM) != json_checksum(meta) or meta.get("step") != step:
        raise CheckpointError(f"checkpoint {where} is damaged: its meta (step, epoch, metrics) differs from what was written")


def verify_items(where: Path, step: int, expected: dict, meta: Any, data: Any, card: dict | None) -> None:
    """Refuse a step whose JSON items differ from its manifest: `meta` (with the step it names), `data`
    (present exactly when the manifest lists it) and, when the reader knows the run's card, the card."""
    verify_meta(where, step, expected, meta)
    if (data is not None or DATA_CHECKSUM in expected) and expected.get(DATA_CHECKSUM) != json_checksum(data):
        raise CheckpointError(f"checkpoint {where} is damaged: its input position differs from what was written")
    if card is not None and expected.get(CARD_CHECKSUM) != json_checksum(card):
        raise CheckpointError(
            f"checkpoint {where} was not written for this model card ({where.parent.parent / 'model.json'}: "
            "preprocessing, class names or model differ, or one of them is damaged)"
        )


def _describe(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """Flat {name: (shape, dtype)} of a pytree of arrays or array metadata."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {path_name(path): (tuple(leaf.shape), str(leaf.dtype)) for path, leaf in flat}


def check_compatible(saved: Any, expected: Any, where: Path) -> None:
    """Refuse a checkpoint whose arrays differ from the model's, naming the first differences."""
    have, want = _describe(saved), _describe(expected)
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    shapes = [
        f"{k}: checkpoint {have[k][0]} vs model {want[k][0]}" for k in sorted(set(have) & set(want)) if have[k][0] != want[k][0]
    ]
    problems = (
        [f"missing {', '.join(missing[:3])}"] * bool(missing) + [f"unexpected {', '.join(extra[:3])}"] * bool(extra) + shapes[:3]
    )
    if problems:
        raise CheckpointError(
            f"checkpoint {where} does not match the model ({'; '.join(problems)}); "
            "use the config it was trained with or a fresh run directory"
        )


@contextlib.contextmanager
def _quiet_async_failures():
    """A failed TensorStore read leaves coroutines whose errors Python prints as 'Exception ignored' tracebacks
    when they are collected; the failure is already reported in one line, so collect them silently here.

    Only after a failure: a full collection costs 0.1-0.4 s in a process holding JAX and PyTorch, and every save
    reads its step back."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: log.debug("ignored after a failed read: %s", unraisable.exc_value)
    try:
        yield
    except BaseException:
        gc.collect()
        raise
    finally:
        sys.unraisablehook = previous


@contextlib.contextmanager
def _reading(where: Path):
    """Reading a checkpoint: whatever Orbax or TensorStore raises becomes one 'is damaged' line."""
    try:
        with _quiet_async_failures():
            yield
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is a damaged checkpoint
        stop = _interruption(err)
        if stop is not None:  # a read cut short by a signal's exit: the file is fine, the process is leaving
            raise stop from None
        raise CheckpointError(f"checkpoint {where} is damaged ({_first_line(err)})") from err


def _causes(err: BaseException | None) -> Iterator[BaseException]:
    """`err` and what caused it, outermost first."""
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__


def _interruption(err: BaseException) -> BaseException | None:
    """The SystemExit or KeyboardInterrupt behind `err`, if any. A signal handler that exits (submitit's on
    preemption: `sys.exit(-1)`) can fire inside TensorStore's read, which Orbax then reports as a failed read."""
    return next((cause for cause in _causes(err) if isinstance(cause, (SystemExit, KeyboardInterrupt))), None)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` (or what caused it) is 'no space left on device'."""
    return any(isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left" in str(e) for e in _causes(err))


def _settle(before: set[threading.Thread], timeout: float = 30.0) -> None:
    """After a failed or interrupted save, its threads still end, each logging its traceback (and TensorStore's
    writes print one about Orbax's closed event loop): let them end now, while their output goes to the log file
    only. Joined, not slept on: under load they outlived a fixed second and printed on the terminal."""
    gc.collect()
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - before:
        if thread is not threading.current_thread():
            with contextlib.suppress(Exception):  # Orbax's threads re-raise their failure from join()
                thread.join(max(0.0, deadline - time.monotonic()))
    time.sleep(0.2)
    gc.collect()


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def write_verified_tree(directory: Path, tree: Any) -> None:
    """A standalone tree of arrays with its checksums (exported models)."""
    tree = keys_to_data(tree)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(Path(directory).absolute(), tree, force=True)
    (Path(directory) / "checksums.json").write_text(json.dumps(checksums(tree), indent=1))


def read_verified_tree(directory: Path, like: Any) -> Any:
    """Inverse of `write_verified_tree` into the structure of `like`, verified."""
    directory = Path(directory).absolute()
    raw_like = keys_to_data(like)
    try:
        with ocp.StandardCheckpointer() as ckpt:
            check_compatible(ckpt.metadata(directory).item_metadata.tree, raw_like, directory)
            tree = ckpt.restore(directory, _abstract(raw_like))
        expected = json.loads((directory / "checksums.json").read_text())
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever TensorStore raises, the file is damaged
        raise CheckpointError(f"weights {directory} are unreadable ({_first_line(err)}); the artifact is damaged") from err
    verify(tree, expected, directory)
    return keys_from_data(tree, like)


class RunCheckpoints:
    """The `checkpoints/` directory of one run: save, pick best/last, restore verified, retain."""

    def __init__(
        self,
        directory: Path,
        keep_last: int = 2,
        best_metric: str = "val/accuracy",
        best_mode: str = "max",
        card: dict | None = None,
    ):
        """`card`: the identity (`card_identity`) of the run's model card, stored with and checked against every step."""
        self.directory = Path(directory).absolute()
        self.card = card
        self.keep_last = max(int(keep_last), 1)
        self.best_metric = best_metric
        self.best_mode = best_mode
        options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False, create=True)
        handlers = {
            "state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
            "checksums": ocp.JsonCheckpointHandler(),
            "data": ocp.JsonCheckpointHandler(),
        }
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any, meta: dict, metrics: dict[str, float], data: dict | None = None) -> None:
        """Write `step` with its metrics and checksum manifest, read it back verified, and only then drop
        steps neither among the last N nor the best.

        `data`: where the input stands (a mid-epoch checkpoint's iterator state), stored as its own item."""
        watchdog.long_phase()  # a save (and its read-back) of a large model may take minutes: not a stall
        raw = keys_to_data(state)
        meta = {**meta, "step": step, "metrics": {k: float(v) for k, v in metrics.items()}}
        items = {"state": ocp.args.StandardSave(raw), "meta": ocp.args.JsonSave(meta)}
        sums = {**checksums(raw), META_CHECKSUM: json_checksum(meta)}
        if self.card is not None:
            sums[CARD_CHECKSUM] = json_checksum(self.card)
        if data is not None:
            items["data"] = ocp.args.JsonSave(data)
            sums[DATA_CHECKSUM] = json_checksum(data)
        args = ocp.args.Composite(**items, checksums=ocp.args.JsonSave(sums))
        try:
            with to_file_only(*LIBRARY_LOGGERS):
                before = set(threading.enumerate())
                try:
                    self.manager.save(step, args=args, force=True)
                    self.manager.wait_until_finished()
                except BaseException:  # a full disk, or Ctrl-C mid-save: Orbax's threads' tracebacks go to run.log
                    _settle(before)
                    raise
        except Exception as err:  # noqa: BLE001
            file_only_from_now(*LIBRARY_LOGGERS)  # its failed tasks may still be logged when collected
            self._remove_partial()
            stop = _interruption(err)
            if stop is not None:  # a signal's exit inside the write: leave as the signal asked
                raise stop from None
            kept = [s for s in self.all_steps() if s != step]
            where = f"step {kept[-1]} is still the last good one" if kept else "no earlier checkpoint exists"
            if is_disk_full(err):
                raise CheckpointError(
                    f"no space left on device writing checkpoint {step} in {self.directory}; "
                    f"{where}; free space and run the same command to resume"
                ) from err
            raise CheckpointError(f"writing checkpoint {step} in {self.directory} failed ({_first_line(err)}); {where}") from err
        try:
            self.restore(step, state)
        except CheckpointError as err:
            raise CheckpointError(f"{err}, right after it was written; no older checkpoint was deleted") from err
        self._retain()

    def _remove_partial(self) -> None:
        """Orbax's temporary step directories of an interrupted save."""
        for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def _retain(self) -> None:
        """Delete the steps neither among the last N nor the best by their verified metrics; a step whose meta
        does not verify is never deleted here (it may be the real best: a resume reports it and moves it aside)."""
        keep = set(self.all_steps()[-self.keep_last :])
        best = self.best_step()
        if best is not None:
            keep.add(best)
        for step in self.all_steps():
            if step not in keep and self.meta(step) and jax.process_index() == 0:
                self.manager.delete(step)
        self.manager.reload()

    def meta(self, step: int) -> dict:
        """A step's stored step, epoch and metrics, verified against its manifest ({} when unreadable or damaged)."""
        where = self.directory / str(step)
        try:
            meta = json.loads((where / "meta" / "metadata").read_text())
            expected = json.loads((where / "checksums" / "metadata").read_text())
            verify_meta(where, step, expected, meta)
        except (OSError, ValueError, AttributeError, CheckpointError):
            return {}
        return meta

    def best_step(self) -> int | None:
        """The kept step with the best `best_metric` among those whose meta verifies (ties: the earliest);
        None if no step has it."""
        scored = []
        for step in self.all_steps():
            value = self.meta(step).get("metrics", {}).get(self.best_metric)
            if value is not None and math.isfinite(value):
                scored.append((-value if self.best_mode == "max" else value, step))
        return min(scored)[1] if scored else None

    def select_step(self, which: str | int = "best") -> int:
        """The step `which` names ('best', 'last' or a step number), or a clear error if it has none."""
        if which == "best":
            step = self.best_step()
            step = self.latest_step() if step is None else step  # runs of apps without a validation metric
        elif which == "last":
            step = self.latest_step()
        else:
            step = int(which)
        if step is None or step not in self.all_steps():
            raise CheckpointError(
                f"no checkpoint {'' if step is None else step} in {self.directory}; train first or pick one of {self.all_steps()}"
            )
        return step

    def _saved_state(self, step: int, where: Path) -> Any:
        """The metadata tree of a step's stored state."""
        saved = self.manager.item_metadata(step)["state"]
        if saved is None:
            raise CheckpointError(f"checkpoint {where} has no model state; it is damaged or not a jaxdl checkpoint")
        return saved

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restore `step` into the structure, shapes and shardings of `like`, verified against its checksums.

        The meta dict holds the step's `data` item under "data" when it has one (a mid-epoch checkpoint)."""
        where = self.directory / str(step)
        raw_like = keys_to_data(like)
        with _reading(where):
            saved = self._saved_state(step, where)
            check_compatible(saved, raw_like, where)
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(raw_like)), **self._json_items(where)),
            )
        meta = self._verified(step, where, restored)
        if restored.get("data") is not None:
            meta["data"] = dict(restored["data"])
        return keys_from_data(restored["state"], like), meta

    def _verified(self, step: int, where: Path, restored: Any) -> dict:
        """The restored meta, once every array and JSON item of the step matched its manifest."""
        expected = restored["checksums"]
        if not isinstance(expected, dict):
            raise CheckpointError(f"checkpoint {where} is damaged: its checksum manifest is unreadable")
        verify(restored["state"], expected, where)
        verify_items(where, step, expected, restored["meta"], restored.get("data"), self.card)
        return dict(restored["meta"])

    def _json_items(self, where: Path) -> dict:
        """Restore arguments of the JSON items every verification reads (`data` where the step has one)."""
        items = {"meta": ocp.args.JsonRestore(), "checksums": ocp.args.JsonRestore()}
        if (where / "data").is_dir():
            items["data"] = ocp.args.JsonRestore()
        return items

    def restore_part(self, step: int, like: dict[str, Any]) -> dict[str, Any]:
        """Only the top-level entries of the state named in `like` (e.g. params and model_state), without
        knowing the rest (the optimiser): the whole step is read as stored and verified, then subset."""
        where = self.directory / str(step)
        raw_like = keys_to_data(like)
        with _reading(where):
            saved = self._saved_state(step, where)
            check_compatible({key: saved[key] for key in raw_like if key in saved}, raw_like, where)
            # onto one local device: the step may have been written by another device count or topology
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            stored = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(stored), **self._json_items(where))
            )
        self._verified(step, where, restored)
        by_name = named_leaves({key: restored["state"][key] for key in raw_like})
        return keys_from_data(map_named(lambda name, _: by_name[name], raw_like), like)

    def restore_named(self, step: int, prefix: str) -> dict[str, Any]:
        """{dotted name: array} of the stored leaves whose names start with `prefix` (e.g. the weight EMA
        inside the optimiser state, jaxdl/ema.py), read onto one local device and verified."""
        where = self.directory / str(step)
        with _reading(where):
            saved = self._saved_state(step, where)
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            stored = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(stored), checksums=ocp.args.JsonRestore())
            )
        verify(restored["state"], dict(restored["checksums"] or {}), where)
        return {name[len(prefix) :]: leaf for name, leaf in named_leaves(restored["state"]).items() if name.startswith(prefix)}

    def restore_latest_good(self, like: Any) -> tuple[Any, dict, int, dict[int, str]]:
        """(state, meta, step, damaged) of the newest checkpoint that loads and verifies, after checking every
        kept step (so a damaged best is found now, not after training). `damaged`: {step: why} of the others
        that failed; they are moved aside to `damaged_checkpoints/` beside `checkpoints/` (kept for
        inspection, out of the way of the resumed run). When no step verifies, the resume is refused in one
        line and nothing is moved."""
        newest, damaged = None, {}
        for step in reversed(self.all_steps()):
            try:
                state, meta = self.restore(step, like)
            except CheckpointError as err:
                if "does not match the model" in str(err) or "not written for this model card" in str(err):
                    raise
                damaged[step] = str(err)
                continue
            if newest is None:
                newest = (state, meta, step)
        if newest is None:
            newest_step = max(damaged)
            raise RunRefused(
                f"every checkpoint in {self.directory} is damaged (steps {', '.join(map(str, sorted(damaged)))}); "
                "nothing was changed: pass trainer.resume=false trainer.overwrite=true to start over "
                f"(step {newest_step}: {damaged[newest_step].removeprefix(f'checkpoint {self.directory / str(newest_step)} ')})"
            )
        for step, why in sorted(damaged.items()):
            aside = self.directory.parent / DAMAGED / str(step)
            log.warning("%s; moved to %s", why, aside)
            if jax.process_index() == 0:
                aside.parent.mkdir(exist_ok=True)
                shutil.rmtree(aside, ignore_errors=True)
                (self.directory / str(step)).rename(aside)
        self.manager.reload()
        return (*newest, damaged)

    def close(self) -> None:
        self.manager.close()
