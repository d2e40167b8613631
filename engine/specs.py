"""Model specs `FAMILY:ID[@TAG]` (docs/design.md §4)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mgap.core.errors import UsageError

#: the one registry of model families: spec family -> its adapter module in
#: `mgap.engine.models`, in the order `mgap models` lists them. Everything else
#: (spec parsing, the catalog, `--family`, the loader) derives from it.
FAMILY_MODULES = {
    "open_clip": "openclip",
    "hf": "hf",
    "llava": "llava",
    "vision": "vision",
    "st": "sentence",
    "toy": "toy",
    "meru": "meru",
}
FAMILIES = tuple(FAMILY_MODULES)
#: the longest spec accepted (a local checkpoint path fits; a pasted file does not)
MAX_SPEC_CHARS = 1024


@dataclass(frozen=True)
class ModelSpec:
    family: str
    id: str
    tag: str | None = None

    @property
    def text(self) -> str:
        return f"{self.family}:{self.id}" + (f"@{self.tag}" if self.tag else "")

    def __str__(self) -> str:
        return self.text


def parse_model_spec(spec: str) -> ModelSpec:
    """Split `open_clip:ViT-B-32@openai`; a bad spec is a usage error naming the fix."""
    if len(spec) > MAX_SPEC_CHARS or not spec.isprintable():
        raise UsageError(
            f"model spec {spec[:40]!r}… is {len(spec)} characters or holds control characters",
            hint=f"write FAMILY:ID[@TAG] in at most {MAX_SPEC_CHARS} printable characters",
        )
    family, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UsageError(
            f"model spec {spec!r} has no family",
            hint="write FAMILY:ID[@TAG], e.g. open_clip:ViT-B-32@openai or hf:openai/clip-vit-base-patch32",
        )
    if family not in FAMILIES:
        raise UsageError(
            f"unknown model family {family!r} in {spec!r}",
            hint=f"use one of: {', '.join(FAMILIES)}",
        )
    ident, at, tag = rest.partition("@")
    if not ident or (at and not tag):
        raise UsageError(f"model spec {spec!r} is incomplete", hint="write FAMILY:ID[@TAG]")
    return ModelSpec(family, ident, tag or None)


#: characters that make a spec a pattern (fnmatch / glob syntax)
PATTERN_CHARS = "*?["


def is_pattern(spec: str) -> bool:
    """A spec with `*`, `?` or `[` stands for several models or checkpoint files."""
    return any(c in spec for c in PATTERN_CHARS)


def read_model_list(path: Path) -> list[str]:
    """The specs of a `--models FILE`: one a line, blank lines and `#` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise UsageError(
            f"cannot read --models file {path}: {reason}",
            hint="give a text file with one FAMILY:ID[@TAG] a line",
        ) from None
    specs = [re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip() for line in text.splitlines()]
    specs = [spec for spec in specs if spec]
    if not specs:
        raise UsageError(
            f"--models file {path} lists no model",
            hint="write one FAMILY:ID[@TAG] a line (# starts a comment)",
        )
    return specs
