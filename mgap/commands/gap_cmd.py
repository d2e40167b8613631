"""`mgap gap`: modality gap metrics of one store, as a rich table or one JSON document.

The analysis module is imported inside the command; it imports neither torch nor textual
(sklearn only for the separability column).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.compute_opts import (
    DEVICE_OPT,
    EXACT_OPT,
    FAST_OPT,
    SAMPLE_OPT,
    SEED_OPT,
    backend,
)
from mgap.commands.group_opts import (
    BOOTSTRAP_OPT,
    GROUPS_OPT,
    MIN_GROUP_OPT,
    load_groups,
    print_groups,
)
from mgap.commands.report_common import (
    BY_CATEGORY_OPT,
    CAPTIONS_OPT,
    CHECK_OPT,
    JSON_OPT,
    KIND_SHORT,
    STORE_ARG,
    open_store_arg,
    print_header,
    table,
)
from mgap.core.errors import UsageError
from mgap.output import fmt, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import CategoryRow, GapReport, HyperbolicReport
    from mgap.engine.reports.depth import DepthGapReport
    from mgap.engine.reports.groups import GroupsReport


def print_gap(report: GapReport) -> None:
    """The gap report for people: metrics, top dimensions, categories, hyperbolic block."""
    print_header(report)
    metrics = table(
        "Modality gap",
        ["metric", "value"],
        caption=f"{report.n_images} images, {_text_side(report)}, d={report.dim}",
    )
    for label, value in (
        ("L2M  ||mean x - mean y||", report.l2m),
        ("L2I  mean paired ||x - y||", report.l2i),
        ("mean paired cosine", report.mean_paired_cosine),
        ("intra-image cosine", report.intra_image_cosine),
        ("intra-text cosine", report.intra_text_cosine),
        ("RMG", report.rmg),
    ):
        metrics.add_row(label, fmt(value))
    sep = report.separability
    if sep is not None:
        metrics.add_row(
            f"separability ({sep.folds}-fold, {sep.n_per_side}/side)", fmt(sep.accuracy)
        )
    stdout.print(metrics)
    if report.top_dims:
        dims = table("Top gap dimensions", ["dim", "delta", "share of L2M²", "cumulative"])
        for row in report.top_dims:
            dims.add_row(str(row.dim), fmt(row.delta), fmt(row.share), fmt(row.cumulative_share))
        stdout.print(dims)
    if report.by_category is not None:
        _print_categories(report.by_category)
    if report.hyperbolic is not None:
        _print_hyperbolic(report.hyperbolic)


def _text_side(report: GapReport) -> str:
    """What the text side is: the captions, or one text per class for classification stores."""
    if report.text_side == "unique_class_texts":
        return (
            f"{report.n_texts} class texts (one per class, from {report.n_text_rows} prompt "
            f"rows, {report.templates_per_class} template(s) each)"
        )
    return f"{report.n_texts} captions ({report.captions})"


def _print_categories(rows: list[CategoryRow]) -> None:
    cats = table(
        "By category, ranked by L2M",
        ["name", "kind", "img", "txt", "L2M", "L2I", "cos", "RMG"],
        caption="cos = mean paired cosine; --json adds the category x category tables",
    )
    for row in sorted(rows, key=lambda r: (r.kind, -(r.l2m or 0.0))):
        cats.add_row(
            row.name[:16],
            KIND_SHORT[row.kind],
            str(row.n_images),
            str(row.n_texts),
            fmt(row.l2m, 3),
            fmt(row.l2i, 3),
            fmt(row.mean_paired_cosine, 3),
            fmt(row.rmg, 3),
        )
    stdout.print(cats)


def _print_hyperbolic(hyp: HyperbolicReport) -> None:
    from mgap.engine.plots.histogram import histogram_lines

    out = table(f"Hyperbolic (Lorentz, curvature {fmt(hyp.curvature)})", ["metric", "value"])
    out.add_row("ranking score", hyp.score)
    out.add_row("tangent-space L2M (normalised)", fmt(hyp.tangent_gap.l2m))
    out.add_row("tangent-space RMG (normalised)", fmt(hyp.tangent_gap.rmg))
    raw = hyp.tangent_gap_unnormalised
    out.add_row("tangent centroid distance (norms kept)", fmt(raw.centroid_distance))
    out.add_row("tangent paired distance (norms kept)", fmt(raw.mean_paired_distance))
    geodesic = hyp.geodesic
    for key in ("paired", "image_text", "image_image", "text_text"):
        value = getattr(geodesic, key)
        out.add_row(f"mean geodesic distance, {key.replace('_', '-')}", fmt(value))
    origin = hyp.origin_distance
    out.add_row("mean distance from origin, image", fmt(origin.image))
    out.add_row("mean distance from origin, text", fmt(origin.text))
    out.add_row("images inside their caption's cone", fmt(hyp.entailment.inside))
    out.add_row("mean angle - half-aperture (rad)", fmt(hyp.entailment.mean_angle_minus_aperture))
    stdout.print(out)
    hist = origin.histogram
    stdout.print("distance from the origin (counts per bin)", highlight=False)
    lines = histogram_lines(hist.edges, {"image": hist.image, "text": hist.text})
    stdout.print("\n".join(lines), highlight=False, markup=False)


def print_depth(report: DepthGapReport) -> None:
    """Two tables, one row per layer: the gap metrics, then R@1 (and intervals if sampled)."""
    print_header(report)
    gap_rows = table(
        f"Gap across depth ({report.space} space)",
        ["layer", "L2M", "RMG", "pair cos", "intra img", "intra txt"],
        caption=f"{report.n_images} images, {report.n_texts} captions ({report.captions})",
    )
    for row in report.layers:
        values = (row.l2m, row.rmg, row.mean_paired_cosine)
        intra = (row.intra_image_cosine, row.intra_text_cosine)
        gap_rows.add_row(str(row.layer), *(fmt(v, 4) for v in (*values, *intra)))
    stdout.print(gap_rows)
    _print_depth_recall(report)
    for side in ("image", "text"):
        lens = f"; lens: {report.lens[side]}" if report.space == "lens" else ""
        stdout.print(f"{side}: {report.pooling[side]}{lens}", highlight=False, markup=False)


def _print_depth_recall(report: DepthGapReport) -> None:
    estimate = report.retrieval
    if estimate.mode != "sampled":
        out = table("R@1 across depth (exact)", ["layer", "i2t R@1", "t2i R@1"])
        for row in report.layers:
            out.add_row(str(row.layer), fmt(row.i2t_r1, 3), fmt(row.t2i_r1, 3))
        stdout.print(out)
        return
    out = table(
        "R@1 across depth (sampled)",
        ["layer", "i2t R@1", "95% interval", "t2i R@1", "95% interval"],
        caption=f"{estimate.n_image_queries} image and {estimate.n_text_queries} caption "
        f"queries against the whole gallery, seed {estimate.seed}",
    )
    for row in report.layers:
        out.add_row(
            str(row.layer),
            fmt(row.i2t_r1, 3),
            _interval(row.i2t_r1_interval),
            fmt(row.t2i_r1, 3),
            _interval(row.t2i_r1_interval),
        )
    stdout.print(out)


def _interval(bounds: list[float | None] | None) -> str:
    return "-" if bounds is None else f"[{fmt(bounds[0], 3)}, {fmt(bounds[1], 3)}]"


#: per-group table columns of `mgap gap --groups`
GROUP_COLUMNS = [("L2M", "l2m"), ("RMG", "rmg"), ("pair cos", "mean_paired_cosine")]


def gap(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    by_category: bool = BY_CATEGORY_OPT,
    captions: str = CAPTIONS_OPT,
    top_k: int = typer.Option(10, "--top-k", min=0, help="Gap dimensions to list."),
    no_separability: bool = typer.Option(
        False, "--no-separability", help="Skip the logistic-regression separability."
    ),
    text_side: str = typer.Option(
        "auto",
        "--text-side",
        help="auto: one text per class on classification stores, else captions; "
        "captions: every caption row.",
    ),
    groups: list[str] | None = GROUPS_OPT,
    min_group: int = MIN_GROUP_OPT,
    bootstrap: int = BOOTSTRAP_OPT,
    device: str = DEVICE_OPT,
    fast: bool = FAST_OPT,
    sample: int | None = SAMPLE_OPT,
    exact: bool = EXACT_OPT,
    seed: int = SEED_OPT,
    layers: bool = typer.Option(
        False, "--layers", help="One row per stored layer (stores from `mgap extract --layers`)."
    ),
    space: str | None = typer.Option(
        None,
        "--space",
        help="With --layers: lens (each layer through its tower's head; the default when "
        "stored) or raw (the pooled states; both sides must share a width).",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Modality gap metrics: L2M, L2I, paired and intra-modal cosines, RMG, top dims.

    With --by-category, the category mean-pairwise table is sampled by default on the CPU
    for stores above 2e9 (image, caption) pairs (--exact forces it, --sample N sets N).
    With --layers, one row per stored layer: the gap metrics and i2t/t2i R@1, sampled on
    the CPU above 2e9 pairs (5,000 queries per direction, with 95% intervals)."""
    from mgap.engine.studies.gap import gap_report
    from mgap.engine.studies.gap_request import GapRequest

    if sample is not None and exact:
        raise UsageError("--sample and --exact exclude each other", hint="pick one")
    opened = open_store_arg(store)
    if layers or space is not None:
        depth = DepthArgs(layers, space, captions, sample, exact, seed)
        _depth(opened, depth, by_category, groups, backend(device, fast), as_json)
        return
    grouped = load_groups(opened, groups, min_group, bootstrap)
    request = GapRequest(
        captions=captions,
        by_category=by_category,
        top_k=top_k,
        separability=not no_separability,
        text_side=text_side,
        sample=sample,
        exact=exact,
        seed=seed,
    )
    report = gap_report(
        opened,
        request,
        backend=backend(device, fast),
        groups=None if grouped is None else lambda: _groups(opened, grouped, captions),
    )
    if as_json:
        print_json(report.to_json())
        return
    print_gap(report)
    if report.groups is not None:
        print_groups(report.groups, GROUP_COLUMNS)


@dataclass(frozen=True)
class DepthArgs:
    """The options `mgap gap --layers` reads."""

    layers: bool
    space: str | None
    captions: str
    sample: int | None
    exact: bool
    seed: int


def _depth(opened, args: DepthArgs, by_category: bool, groups, be, as_json: bool) -> None:
    """`mgap gap --layers`: refuse what it does not combine with, then the per-layer table."""
    from mgap.engine.studies.gap_layers import DepthRequest, gap_layers_report

    if not args.layers:
        raise UsageError("--space goes with --layers", hint="add --layers")
    if by_category or groups:
        raise UsageError(
            "--layers gives the whole store per layer; it does not split by category or group",
            hint="drop --by-category/--groups, or run them without --layers",
        )
    request = DepthRequest(args.space, args.captions, args.sample, args.exact, args.seed)
    report = gap_layers_report(opened, request, backend=be)
    if as_json:
        print_json(report.to_json())
    else:
        print_depth(report)


def _groups(opened, grouped, captions: str) -> GroupsReport:
    """The `--groups` document."""
    from mgap.engine.studies.group_report import store_groups

    return store_groups(opened, "gap", *grouped, captions=captions)


def register(app: typer.Typer) -> None:
    app.command("gap")(gap)
