"""`meru:PATH`: MERU checkpoints (hyperbolic, Lorentz model) and MERU's CLIP baselines.

The embedding of a MERU model is the space component of exp_O(exp(alpha)·proj(features))
on the hyperboloid of curvature -exp(curv) (image: [CLS] of the ViT; text: the EOT token,
the largest id of open_clip's CLIP BPE tokenizer); the store records geometry=lorentz and
c = exp(curv). `arch=...:clip` loads the Euclidean CLIP baselines: the same towers,
L2-normalised. "Accept the Modality Gap" releases MERU-format checkpoints, so they load the
same way.

The architecture comes from `--model-option arch=vit_s|vit_b|vit_l[:clip]`, else from a
JSON config beside the checkpoint (`<stem>.json`), else from MERU's release file names
(`meru_vit_l.pth`, `clip_vit_b.pth`). Checkpoints load with `torch.load(weights_only=True)`:
a pickle holding code is refused, never run.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.models.base import EmbeddingModel
from mgap.engine.models.hf_parts import check_options
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

    from mgap.engine.models.meru_arch import MeruConfig, MeruNet

ARCH_CHOICES = tuple(f"{a}{k}" for a in ("vit_s", "vit_b", "vit_l") for k in ("", ":clip"))
#: MERU's release names: meru_vit_l.pth, clip_vit_s.pth
RELEASE_NAME = re.compile(r"(meru|clip)_(vit_[sbl])\b")
#: keys shown in a mismatch message before "and N more"
SHOWN_KEYS = 3
ARCH_BY_WIDTH = {384: "vit_s", 768: "vit_b", 1024: "vit_l"}


def parse_arch(text: str) -> tuple[str, str]:
    """`vit_b` -> ("vit_b", "meru"); `vit_b:clip` -> ("vit_b", "clip")."""
    arch, _, kind = text.partition(":")
    if text not in ARCH_CHOICES:
        raise UsageError(
            f"unknown MERU arch {text!r}", hint=f"use one of {', '.join(ARCH_CHOICES)}"
        )
    return arch, kind or "meru"


def resolve_config(path: Path, arch_option: str | None) -> tuple[MeruConfig, str]:
    """(config, where it came from): the option, a `<stem>.json` beside it, or the file name."""
    from mgap.engine.models.meru_arch import MeruConfig

    if arch_option:
        arch, kind = parse_arch(arch_option)
        return MeruConfig.for_arch(arch, kind), f"arch={arch_option}"
    beside = path.with_suffix(".json")
    if beside.is_file():
        return _config_file(beside), str(beside)
    found = RELEASE_NAME.search(path.name)
    if found:
        kind, arch = found.groups()
        return MeruConfig.for_arch(arch, kind), f"file name {path.name}"
    raise UsageError(
        f"cannot tell the architecture of {path.name}",
        hint="pass --model-option arch=vit_s|vit_b|vit_l (add :clip for a CLIP baseline)",
    )


def _config_file(path: Path) -> MeruConfig:
    """A JSON object: optional "arch" (vit_s|vit_b|vit_l[:clip]) plus any MeruConfig field."""
    from dataclasses import fields

    from mgap.engine.models.meru_arch import MeruConfig

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable JSON config: {exc}") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"{path} must hold a JSON object")
    known = {f.name for f in fields(MeruConfig)}
    unknown = sorted(set(doc) - known - {"arch"})
    if unknown:
        raise UsageError(f"{path}: unknown config keys {unknown}", hint=f"known: {sorted(known)}")
    cfg = MeruConfig.for_arch(*parse_arch(str(doc.pop("arch")))) if "arch" in doc else MeruConfig()
    if doc.get("kind", cfg.kind) not in ("meru", "clip"):
        raise UsageError(f"{path}: kind must be meru or clip")
    return cfg.updated(**doc)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors: under a `model` key or flat, `module.` prefixes removed.

    A truncated file, a non-checkpoint and a pickle that would run code each end in one line.
    """
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "Unsupported" in line), first[0] if first else "")
        raise ModelUnavailableError(
            f"{path} holds Python objects beyond tensors ({detail.strip()})",
            hint="mgap loads weights only (torch.load weights_only=True); re-save the state dict",
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ModelUnavailableError(
            f"{path} is not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})",
            hint="the file may be truncated: download it again",
        ) from exc
    state = loaded.get("model", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelUnavailableError(
            f"{path} holds no state dict of tensors (a flat dict or one under 'model')"
        )
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _names(keys: Sequence[str]) -> str:
    shown = ", ".join(sorted(keys)[:SHOWN_KEYS])
    more = len(keys) - SHOWN_KEYS
    return shown + (f" and {more} more" if more > 0 else "")


def _arch_hint(state: Mapping[str, torch.Tensor]) -> str:
    """The arch option the checkpoint's own shapes point to, for the error message."""
    token = state.get("visual.cls_token")
    arch = ARCH_BY_WIDTH.get(int(token.shape[-1])) if token is not None else None
    kind = "" if "curv" in state else ":clip"
    if arch is None:
        return "check the checkpoint and the arch option"
    depth = len({k.split(".")[2] for k in state if k.startswith("visual.blocks.")})
    layers = len({k.split(".")[2] for k in state if k.startswith("textual.resblocks.")})
    return (
        f"the checkpoint looks like arch={arch}{kind} with {depth} ViT and {layers} text "
        "blocks (other depths need a <stem>.json config beside it)"
    )


def load_weights(net: MeruNet, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Strict load; missing, unexpected or mis-shaped keys are one line naming them."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"missing {_names(missing)}" if missing else ""]
        parts.append(f"unexpected {_names(unexpected)}" if unexpected else "")
        raise ModelUnavailableError(
            f"checkpoint does not match {where}: {'; '.join(p for p in parts if p)}",
            hint=_arch_hint(state),
        )
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise ModelUnavailableError(
            f"checkpoint does not match {where}: {k} has shape {tuple(state[k].shape)}, "
            f"expected {tuple(expected[k].shape)} ({len(wrong)} tensors differ)",
            hint=_arch_hint(state),
        )
    net.load_state_dict(state, strict=True, assign=True)
    left = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:
        raise ModelUnavailableError(f"{where}: no checkpoint tensor for {_names(left)}")


class ImagePreprocess:
    """MERU's evaluation transform: bicubic resize of the short side, centre crop, [0, 1]."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Any) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        image = F.resize(image, self.size, interpolation=InterpolationMode.BICUBIC)
        return F.to_tensor(F.center_crop(image, [self.size, self.size]))


class MeruModel(EmbeddingModel):
    family = "meru"

    def __init__(self, spec: ModelSpec, device: str, arch: str | None = None) -> None:
        super().__init__(spec, device)
        import torch
        from open_clip.tokenizer import SimpleTokenizer

        from mgap.engine.models.meru_arch import MeruNet

        self.path = Path(spec.id).expanduser()
        if not self.path.is_file():
            raise ModelUnavailableError(
                f"model {spec}: {self.path} is not a file",
                hint="download a checkpoint (docs/models-and-datasets.md, Hyperbolic models) and pass its path",
            )
        cfg, self.config_source = resolve_config(self.path, arch)
        state = read_state_dict(self.path)
        with torch.device("meta"):  # no init cost: every tensor comes from the checkpoint
            self.net = MeruNet(cfg)
        load_weights(self.net, state, f"{cfg.kind} {cfg.vit} ({self.config_source})")
        self.net.requires_grad_(False)
        self.net.to(device).eval()
        self.tokenizer = SimpleTokenizer(context_length=cfg.context_length)
        if self.net.hyperbolic:
            self.embedding_image = (
                "space component of exp_O(exp(visual_alpha)·visual_proj(ViT [CLS])) "
                "on the hyperboloid of curvature -exp(curv)"
            )
            self.embedding_text = (
                "space component of exp_O(exp(textual_alpha)·textual_proj(EOT token state)) "
                "on the hyperboloid of curvature -exp(curv)"
            )
        else:
            self.embedding_image = "L2-normalised visual_proj(ViT [CLS])"
            self.embedding_text = "L2-normalised textual_proj(EOT token state)"

    def image_preprocess(self) -> Callable[[Any], torch.Tensor]:
        return ImagePreprocess(self.net.cfg.image_size)

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.encode_image(batch.to(self.device, dtype=self.net.pixel_mean.dtype))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.net.encode_text(self.tokenizer(list(texts)).to(self.device))

    def provenance(self) -> dict[str, object]:
        from mgap.store.schema import GEOMETRY_EUCLIDEAN, GEOMETRY_LORENTZ

        net = self.net
        out: dict[str, object] = {
            "weights": str(self.path.resolve()),
            "preprocessing": {
                "image": f"bicubic resize {net.cfg.image_size}, centre crop, [0,1], "
                "normalised inside the model by pixel_mean/pixel_std",
                "text": f"open_clip SimpleTokenizer (CLIP BPE), context {net.cfg.context_length}, "
                "causal tower run on tokens trimmed to the batch's longest caption (exact)",
            },
            "meru_config": json.dumps(net.cfg.to_dict()),
            "meru_config_source": self.config_source,
            "logit_scale": float(net.logit_scale.exp()),
            "geometry": GEOMETRY_LORENTZ if net.hyperbolic else GEOMETRY_EUCLIDEAN,
            "curvature": net.curvature(),
        }
        if net.hyperbolic:
            out["alpha_image"] = float(net.visual_alpha.exp())
            out["alpha_text"] = float(net.textual_alpha.exp())
        return out


def load(spec: ModelSpec, device: str, **options: object) -> MeruModel:
    opts = check_options(spec, options, {"arch": ARCH_CHOICES})
    if spec.tag is not None:
        raise UsageError(
            f"{spec} has an @tag, which meru: does not take",
            hint="write meru:/path/to/checkpoint.pth and the arch as --model-option arch=...",
        )
    return MeruModel(spec, device, opts.get("arch"))
