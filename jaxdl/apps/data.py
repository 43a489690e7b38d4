"""`jaxdl-data`: hand a data set to other tools as a folder tree, or check a folder before training on it.

    jaxdl-data write-folder data=fashion_mnist out=PATH [format=png|jpg]
    jaxdl-data inspect data=folder data.root=PATH

Any `data.*` override of `jaxdl-train` works here (e.g. data.train_subset=2000).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import open_dict

from jaxdl.config import check_group_overrides, compose_config
from jaxdl.errors import ConfigError, report_user_errors

COMMANDS = ("write-folder", "inspect")
USAGE = "usage: jaxdl-data write-folder data=NAME out=PATH [format=png|jpg] | jaxdl-data inspect data=folder data.root=PATH"


def compose_data_config(overrides: Sequence[str]):
    check_group_overrides(list(overrides))
    return compose_config("data_app", overrides)


def run(command: str, overrides: Sequence[str]) -> str:
    """What `jaxdl-data COMMAND OVERRIDES...` prints."""
    from jaxdl.data import load_dataset
    from jaxdl.data.folder_tools import inspect_report, write_folder

    if command not in COMMANDS:
        raise ConfigError(f"unknown command '{command}'; {USAGE}")
    cfg = compose_data_config(overrides)
    if command == "write-folder":
        if not cfg.out:
            raise ConfigError(f"write-folder needs out=PATH; {USAGE}")
        counts = write_folder(load_dataset(cfg.data), Path(cfg.out).expanduser(), str(cfg.format))
        return f"wrote {', '.join(f'{n} {s}' for s, n in counts.items())} images to {cfg.out}"
    if cfg.data.source != "folder":
        raise ConfigError(f"inspect reads image folders: pass data=folder data.root=PATH (got data={cfg.data.name})")
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
