"""Where toy models live and how they are saved: safetensors weights plus JSON, no pickle.

Layout: `<cache_dir>/toy/<NAME>/` with `model.safetensors` (the weights), `config.json`
(architecture, vocabulary, training config, seed) and `metrics.json` (loss curve summary,
zero-shot accuracy, seconds). `config.json` is written last, so its presence means the
model is complete.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mgap.core.config import load_config
from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.toy.model import ToyArchitecture, ToyCLIP, ToyTokenizer

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class LoadedToy:
    model: ToyCLIP
    tokenizer: ToyTokenizer
    architecture: ToyArchitecture
    config: dict[str, Any]
    metrics: dict[str, Any]
    folder: Path
    random_seed: int | None  # the init seed of a random twin; None for trained weights
    checkpoint: Path | None = None  # the `train-toy --checkpoints` file the weights came from


def toy_root() -> Path:
    return load_config().cache_dir / "toy"


def toy_dir(name: str) -> Path:
    if not _NAME.match(name):
        raise UsageError(
            f"toy model name {name!r} is not valid",
            hint="use letters, digits, '.', '_' and '-' (starting with a letter or digit)",
        )
    return toy_root() / name


def toy_exists(name: str) -> bool:
    folder = toy_dir(name)
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def build_model(arch: ToyArchitecture, vocabulary: list[str], temperature: float, seed: int):
    """A freshly initialised toy CLIP; the same seed always gives the same weights."""
    tokenizer = ToyTokenizer(vocabulary, arch.max_tokens)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyCLIP(arch, tokenizer.size, temperature)
    return model, tokenizer


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_toy(name: str, model: ToyCLIP, config: dict[str, Any], metrics: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    folder = toy_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).unlink(missing_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / (WEIGHTS + ".tmp")), metadata={"format": "pt"})
    os.replace(folder / (WEIGHTS + ".tmp"), folder / WEIGHTS)
    _write_json(folder / METRICS, metrics)
    _write_json(folder / CONFIG, config)
    return folder


def save_checkpoint(folder: Path, epoch: int, model: ToyCLIP) -> Path:
    """`folder/epoch_<epoch>.pt` in open_clip's checkpoint layout (`epoch`, `state_dict`)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
    path = folder / f"epoch_{epoch}.pt"
    torch.save({"epoch": epoch, "state_dict": state}, path.with_suffix(".pt.tmp"))
    os.replace(path.with_suffix(".pt.tmp"), path)
    return path


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file, named in one line
        raise ModelUnavailableError(
            f"{path} is not a toy checkpoint ({type(exc).__name__})",
            hint="give a file written by `mgap train-toy --checkpoints DIR`",
        ) from None
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else saved
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_toy(
    name: str,
    *,
    random_init: bool = False,
    random_seed: int | None = None,
    device: str = "cpu",
    checkpoint: Path | None = None,
) -> LoadedToy:
    """The trained toy `name`, or with `random_init` its architecture freshly initialised
    (with `random_seed`, default the seed recorded in config.json: training's start), or
    with `checkpoint` the weights of that `train-toy --checkpoints` file."""
    folder = toy_dir(name)
    if not (folder / CONFIG).is_file():
        raise ModelUnavailableError(
            f"toy model {name!r} is not trained yet (no {folder / CONFIG})",
            hint=f"run `mgap train-toy --name {name}` (or `mgap demo` for toy:demo)",
        )
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        arch = ToyArchitecture.from_dict(config["architecture"])
        vocabulary = list(config["vocabulary"])
        temperature = float(config["training"]["temperature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailableError(
            f"{folder / CONFIG} is not a toy model config ({type(exc).__name__}: {exc})",
            hint=f"retrain it with `mgap train-toy --name {name} --overwrite`",
        ) from exc
    seed = int(config.get("random_seed", 0)) if random_seed is None else random_seed
    model, tokenizer = build_model(arch, vocabulary, temperature, seed)
    if checkpoint is not None:
        model.load_state_dict(_checkpoint_state(checkpoint))
    elif not random_init:
        from safetensors.torch import load_file

        if not (folder / WEIGHTS).is_file():
            raise ModelUnavailableError(
                f"toy model {name!r} has no weights file {folder / WEIGHTS}",
                hint=f"retrain it with `mgap train-toy --name {name} --overwrite`",
            )
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    metrics_path = folder / METRICS
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    model.to(device).eval()
    random = seed if random_init else None
    return LoadedToy(model, tokenizer, arch, config, metrics, folder, random, checkpoint)
