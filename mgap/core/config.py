"""User configuration: a TOML file overridden by MGAP_* environment variables.

File: $MGAP_CONFIG, else $XDG_CONFIG_HOME/mgap/config.toml (~/.config/mgap/config.toml).

    store_dir = "~/mgap-stores"
    cache_dir = "~/.cache/mgap"            # toy models, synthetic datasets
    [datasets]                             # named dataset roots shown in the TUI
    coco = "~/data/coco"
    [keys]                                 # TUI key bindings: binding id -> keys
    quit = "q"

Environment: MGAP_STORE_DIR, MGAP_CACHE_DIR, MGAP_DATA_ROOTS (name=path,name=path).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mgap.core.errors import UsageError


@dataclass
class Config:
    store_dir: Path = Path("mgap-stores")
    cache_dir: Path = field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "mgap"
        )
    )
    datasets: dict[str, Path] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    source: Path | None = None


def config_path() -> Path:
    if os.environ.get("MGAP_CONFIG"):
        return Path(os.environ["MGAP_CONFIG"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")).expanduser()
    return base / "mgap" / "config.toml"


def load_config() -> Config:
    config = Config()
    path = config_path()
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"config file {path} is not valid TOML: {exc}",
                hint="fix it or point MGAP_CONFIG elsewhere",
            ) from exc
        config.source = path
        if "store_dir" in data:
            config.store_dir = Path(str(data["store_dir"])).expanduser()
        if "cache_dir" in data:
            config.cache_dir = Path(str(data["cache_dir"])).expanduser()
        config.datasets = {
            k: Path(str(v)).expanduser() for k, v in data.get("datasets", {}).items()
        }
        config.keys = {k: str(v) for k, v in data.get("keys", {}).items()}
    if os.environ.get("MGAP_STORE_DIR"):
        config.store_dir = Path(os.environ["MGAP_STORE_DIR"]).expanduser()
    if os.environ.get("MGAP_CACHE_DIR"):
        config.cache_dir = Path(os.environ["MGAP_CACHE_DIR"]).expanduser()
    for item in filter(None, os.environ.get("MGAP_DATA_ROOTS", "").split(",")):
        name, sep, root = item.partition("=")
        if not sep:
            raise UsageError(f"MGAP_DATA_ROOTS entry {item!r} is not name=path")
        config.datasets[name.strip()] = Path(root.strip()).expanduser()
    return config
