"""Find pretrained weights locally before any library tries the network.

With no network, transformers spends ~30 s and open_clip ~50 s retrying before they fail
(docs/design.md §4). Every HF-based adapter therefore resolves its weights here first: a local
folder wins, then the Hugging Face cache; only when neither has them and the hub answers
a sub-second probe do we download. Otherwise `ModelUnavailableError` says how to provide
them. Nothing here imports torch, so the check costs milliseconds.
"""

from __future__ import annotations

import os
import socket
import threading
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from mgap.core.errors import ModelUnavailableError

#: weight files whose presence makes a cached snapshot usable
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
#: repo files an adapter never needs (other frameworks, exports)
IGNORE_PATTERNS = [
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "coreml/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.gguf",
    "*.tflite",
]
PROBE_TIMEOUT_S = 0.8
_TRUE = {"1", "true", "yes", "on"}


def hf_cache_dir() -> Path:
    """The hub cache huggingface_hub would use, read from the environment at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return xdg / "huggingface" / "hub"


def _probe_target() -> tuple[str, int]:
    """The host a download would connect to first: the proxy if one is set, else the hub."""
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        if os.environ.get(var):
            url = urlparse(os.environ[var] if "//" in os.environ[var] else f"//{os.environ[var]}")
            return url.hostname or "", url.port or 3128
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "", url.port or (443 if url.scheme != "http" else 80)


def _connects(host: str, port: int) -> bool:
    """TCP connect in a daemon thread, so a hanging DNS look-up cannot hold us either."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return bool(result and result[0])


@lru_cache(maxsize=1)
def hub_offline() -> bool:
    """True when downloads are switched off or the hub does not answer within a second."""
    if any(
        os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        return True
    host, port = _probe_target()
    return not (host and _connects(host, port))


def looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~"))


def snapshot_revision(path: Path) -> str | None:
    """The commit hash of a folder inside the HF cache (`.../snapshots/<sha>`), else None."""
    return path.name if path.parent.name == "snapshots" else None


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of a hub repo when it holds weights; no network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(
            snapshot_download(
                repo_id, revision=revision, cache_dir=hf_cache_dir(), local_files_only=True
            )
        )
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None
    has_weights = any(p.suffix in WEIGHT_SUFFIXES for p in folder.rglob("*") if p.is_file())
    return folder if has_weights else None


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """One cached file of a hub repo (open_clip and timm checkpoints), no network."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(
            repo_id, filename, cache_dir=hf_cache_dir(), revision=revision
        )
    except (HFValidationError, ValueError):
        return None
    return Path(found) if isinstance(found, str) else None


def unavailable(
    what: str, repo_id: str, *, local_hint: str = "pass a local folder"
) -> ModelUnavailableError:
    """The one error every adapter raises for missing weights: what, where we looked, the fix."""
    return ModelUnavailableError(
        f"{what} is not available offline: {repo_id} is not in the Hugging Face cache "
        f"{hf_cache_dir()} and the hub cannot be reached",
        hint=(
            f"set HF_HOME to a cache that has it, or run `hf download {repo_id}` "
            f"(huggingface-cli download {repo_id}) on a machine with network and copy the "
            f"cache over, or {local_hint}"
        ),
    )


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    ignore = list(IGNORE_PATTERNS)
    files = HfApi().list_repo_files(repo_id, revision=revision)
    if any(f.endswith(".safetensors") for f in files):
        ignore += ["*.bin", "*.pt", "*.pth"]
    return Path(
        snapshot_download(
            repo_id, revision=revision, cache_dir=hf_cache_dir(), ignore_patterns=ignore
        )
    )


def resolve_pretrained(repo_or_folder: str, *, what: str, revision: str | None = None) -> Path:
    """A folder holding the model: the local folder itself, the cached snapshot, or a fresh
    download when the hub answers; else `ModelUnavailableError` naming the fix."""
    local = Path(repo_or_folder).expanduser()
    if local.is_dir():
        return local.resolve()
    if looks_like_path(repo_or_folder):
        raise ModelUnavailableError(
            f"{what}: folder {repo_or_folder} does not exist",
            hint="give an existing model folder or a hub repo id like org/name",
        )
    cached = cached_snapshot(repo_or_folder, revision)
    if cached is not None:
        return cached
    if hub_offline():
        raise unavailable(what, repo_or_folder)
    try:
        return _download(repo_or_folder, revision)
    except Exception as exc:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise ModelUnavailableError(
            f"{what}: downloading {repo_or_folder} failed: {type(exc).__name__}: {exc}",
            hint="check the repo id, or pass a local folder",
        ) from exc


def weights_provenance(source: str, folder: Path) -> dict[str, str]:
    """`weights` (repo id or folder, with the cache revision when known) for the store."""
    revision = snapshot_revision(folder)
    return {
        "weights": f"{source}@{revision}" if revision else str(folder),
        "weights_folder": str(folder),
    }
