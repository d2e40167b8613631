"""What an `mgap gap` report depends on besides the store: one frozen request that the CLI,
the sidecar cache and the TUI's gap job share (docs/design.md §6), so the TUI never rebuilds
the CLI's options or defaults by hand."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mgap.core.errors import UsageError

#: "auto": unique class texts on classification stores, else captions; "captions": every row
TEXT_SIDES = ("auto", "captions")


@dataclass(frozen=True)
class GapRequest:
    """The options of one gap report; the defaults are `mgap gap`'s."""

    captions: str = "all"
    by_category: bool = False
    top_k: int = 10
    separability: bool = True
    text_side: str = "auto"
    sample: int | None = None
    exact: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.text_side not in TEXT_SIDES:
            raise UsageError(
                f"--text-side must be one of {', '.join(TEXT_SIDES)}, got {self.text_side!r}"
            )

    def summary(self) -> GapRequest:
        """The same request without the category table (what the TUI shows first)."""
        return replace(self, by_category=False)

    def cache_params(self, compute: dict, content: str) -> dict:
        """The sidecar cache key's params: the store's rows (`content`), these options and the
        backend (`compute`: the CPU samples the category table where a GPU runs it exactly)."""
        return {
            "content": content,
            "captions": self.captions,
            "by_category": self.by_category,
            "top_k": int(self.top_k),
            "separability": self.separability,
            "text_side": self.text_side,
            "sample": self.sample,
            "exact": self.exact,
            "seed": int(self.seed),
            "compute": compute,
        }

    def cli_args(self) -> list[str]:
        """The `mgap gap` options that give this request (those that differ from the defaults)."""
        default = GapRequest()
        args = [] if self.captions == default.captions else ["--captions", self.captions]
        args += ["--by-category"] if self.by_category else []
        args += [] if self.top_k == default.top_k else ["--top-k", str(self.top_k)]
        args += [] if self.separability else ["--no-separability"]
        args += [] if self.text_side == default.text_side else ["--text-side", self.text_side]
        args += [] if self.sample is None else ["--sample", str(self.sample)]
        args += ["--exact"] if self.exact else []
        return args + ([] if self.seed == default.seed else ["--seed", str(self.seed)])
