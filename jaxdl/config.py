"""Where `conf/` is, and checks on command-line overrides before Hydra sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from jaxdl.errors import unknown_name

_PACKAGE = Path(__file__).resolve().parent


def _find_conf_dir() -> Path:
    """An installed wheel carries conf/ inside the package; a checkout has it beside the package."""
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"jaxdl's conf/ directory is missing next to {_PACKAGE}; reinstall jaxdl")


CONF_DIR = _find_conf_dir()

GROUPS = ("data", "model", "optimizer", "trainer", "experiment", "hparams_search", "compress", "explain", "gan", "autoencoder")


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The names selectable for a config group, e.g. `model` -> ['lenet5', 'lenet5_classic']."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_group_overrides(argv: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Fail with one line for `model=nope` instead of Hydra's multi-line composition error."""
    for arg in argv:
        if "=" not in arg or arg.startswith(("-", "+", "~", "hydra")):
            continue
        key, value = arg.split("=", 1)
        if key not in GROUPS or not (conf_dir / key).is_dir() or value in ("null", ""):
            continue
        valid = group_options(key, conf_dir)
        for choice in value.split(","):  # multirun: model=a,b
            if choice not in valid:
                raise unknown_name(key, choice, valid)


def compose_config(config_name: str = "config", overrides: Sequence[str] = ()) -> Any:
    """The config `jaxdl-<app> OVERRIDES...` would run, composed without Hydra's run directory
    (for Python callers: notebooks, benchmarks, tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def record_hydra(directory: str | Path) -> None:
    """Hydra's copy of the job's config, overrides and Hydra settings in `<directory>/.hydra/`, written by
    jaxdl (not by Hydra at job start) so that it appears only once the run directory is the job's."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    out = Path(directory) / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)  # a path may hold an escaped '$'
    (out / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    (out / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"hydra": OmegaConf.to_container(hydra_cfg)})))


def outputs_dir(path: str) -> str:
    """Where an app writes what it derives from a model: a run's own directory (explain/, compress/ inside it),
    or beside any other artifact (an exported model, a compressed checkpoint), never inside it."""
    from jaxdl.artifacts import MODEL_CARD, resolve_run_dir

    run_dir, _ = resolve_run_dir(path)
    if (run_dir / "checkpoints").is_dir() or not (run_dir / MODEL_CARD).exists() and not (run_dir / "compressed.json").exists():
        return str(run_dir)
    return str(run_dir.parent)


def register_resolvers() -> None:
    """`${jaxdl_outputs:PATH}` for the apps' configs (see `outputs_dir`)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("jaxdl_outputs", outputs_dir, replace=True)
