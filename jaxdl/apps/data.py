"""`jaxdl-data`: hand a data set to other tools as a folder tree, pack it for fast training, or check it.

    jaxdl-data write-folder data=fashion_mnist out=PATH [format=png|jpg]
    jaxdl-data pack data=folder data.root=PATH out=PACK [max_side=256] [quality=90] [format=jpeg|raw]
    jaxdl-data inspect data=folder data.root=PATH  |  jaxdl-data inspect data=packed data.path=PACK

Any `data.*` override of `jaxdl-train` works here (e.g. data.train_subset=2000).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import open_dict

from jaxdl.config import check_group_overrides, compose_config
from jaxdl.errors import ConfigError, report_user_errors

COMMANDS = ("write-folder", "pack", "inspect")
USAGE = (
    "usage: jaxdl-data write-folder data=NAME out=PATH [format=png|jpg] | "
    "jaxdl-data pack data=NAME out=PACK [max_side=256] [quality=90] [format=jpeg|raw] | "
    "jaxdl-data inspect data=folder data.root=PATH | jaxdl-data inspect data=packed data.path=PACK"
)


def compose_data_config(overrides: Sequence[str]):
    check_group_overrides(list(overrides))
    return compose_config("data_app", overrides)


def run(command: str, overrides: Sequence[str]) -> str:
    """What `jaxdl-data COMMAND OVERRIDES...` prints."""
    from jaxdl.data import load_dataset, packed
    from jaxdl.data.folder_tools import inspect_report, write_folder

    if command not in COMMANDS:
        raise ConfigError(f"unknown command '{command}'; {USAGE}")
    cfg = compose_data_config(overrides)
    if command == "write-folder":
        if not cfg.out:
            raise ConfigError(f"write-folder needs out=PATH; {USAGE}")
        counts = write_folder(load_dataset(cfg.data), Path(cfg.out).expanduser(), str(cfg.format or "png"))
        return f"wrote {', '.join(f'{n} {s}' for s, n in counts.items())} images to {cfg.out}"
    if command == "pack":
        if not cfg.out:
            raise ConfigError(f"pack needs out=PACK; {USAGE}")
        if cfg.data.source == "folder":
            with open_dict(cfg):
                cfg.data.stream = "true"  # the files are read by the pack's workers, not decoded into memory here
        dataset = load_dataset(cfg.data)
        fmt = str(cfg.format or "jpeg")
        return packed.pack(dataset, Path(cfg.out).expanduser(), cfg.max_side, cfg.quality, fmt, cfg.workers, cfg.shard_size)
    if cfg.data.source == "packed":
        return packed.inspect_report(Path(str(cfg.data.path)).expanduser())
    if cfg.data.source != "folder":
        raise ConfigError(
            f"inspect reads image folders and packs: pass data=folder data.root=PATH or data=packed data.path=PACK "
            f"(got data={cfg.data.name})"
        )
    with open_dict(cfg):
        cfg.data.stream = "true"  # read the files, do not decode them into memory
    return inspect_report(load_dataset(cfg.data))


@report_user_errors
def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(USAGE)
        return
    print(run(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":
    main()
