"""`mgap cka`, `mgap knn`, `mgap match`: representational alignment between REFs.

A REF is a store path, optionally suffixed `:image` or `:text` (docs/design.md §6). The
studies (numpy/scipy/sklearn) are imported inside the commands; each returns its typed
report, which `--json` prints and the printers here read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mgap.commands.compute_opts import DEVICE_OPT, FAST_OPT, SAMPLE_OPT, SEED_OPT, backend
from mgap.commands.layer_matrix_out import SPACE_OPT, check_space, print_layer_matrix
from mgap.commands.null_opts import PERMUTATIONS_OPT, print_null
from mgap.commands.report_common import CHECK_OPT
from mgap.commands.shade import shade_cell
from mgap.output import fmt, note, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import CkaReport, KnnReport, MatchReport

JSON_OPT = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def _matrix_table(
    title: str, names: list[str], dims: list[int], matrix, shade: bool, raw: bool = False
):
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("REF", no_wrap=True)
    table.add_column("d", justify="right", no_wrap=True, min_width=4)
    for i in range(len(names)):
        table.add_column(str(i + 1), justify="right", no_wrap=True, min_width=5)
    for i, (name, row) in enumerate(zip(names, matrix, strict=True)):
        cells = [v if raw else shade_cell(v) if shade else fmt(v, 3) for v in row]
        label = name if len(name) <= 38 else "…" + name[-37:]  # keep the :image/:text end
        table.add_row(f"{i + 1} {label}", str(dims[i]), *cells)
    return table


def _interval_table(names: list[str], dims: list[int], intervals):
    """The 95% interval of each sampled CKA entry as `low–high` cells."""
    cells = [[f"{fmt(lo, 3)}–{fmt(hi, 3)}" for lo, hi in row] for row in intervals]
    return _matrix_table(
        "95% intervals (t, disjoint subsamples)", names, dims, cells, shade=False, raw=True
    )


def _layer_matrix(refs: list[str], permutations: int | None) -> bool:
    """Whether the REFs ask for a layers x layers matrix (a REF with @all or a list)."""
    from mgap.core.errors import UsageError
    from mgap.engine.studies.refs import is_stack

    if not any(is_stack(ref) for ref in refs):
        return False
    if len(refs) != 2:
        raise UsageError(
            f"a layers x layers matrix compares two REFs, got {len(refs)}",
            hint="e.g. mgap cka clip.h5:image@all clip.h5:text@all",
        )
    if permutations is not None:
        raise UsageError(
            "--permutations tests one pair, not a layers x layers matrix",
            hint="name one layer per REF (STORE:SIDE@LAYER) for its null",
        )
    return True


def _show_layers(report, json_out: bool) -> None:
    if json_out:
        print_json(report.to_json())
    else:
        print_layer_matrix(report)


def cka(
    refs: list[str] = typer.Argument(
        ..., help="Two or more REFs: STORE[:image|:text][@LAYER]; two REFs @all: layers x layers."
    ),
    check: bool = CHECK_OPT,
    kernel: str = typer.Option("linear", "--kernel", help="linear or rbf."),
    unbiased: bool = typer.Option(False, "--unbiased", help="Song et al. unbiased HSIC."),
    sigma: float | None = typer.Option(
        None, "--sigma", help="RBF bandwidth σ (default: median distance per REF)."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        help="Minibatch unbiased CKA with batches of this size (its own estimator, not the exact one).",
    ),
    device: str = DEVICE_OPT,
    fast: bool = FAST_OPT,
    sample: int | None = SAMPLE_OPT,
    seed: int = SEED_OPT,
    permutations: int | None = PERMUTATIONS_OPT,
    space: str = SPACE_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """CKA matrix between REFs, rows aligned by image id (RBF: exact, in row blocks, at any n).

    `--sample N` estimates the exact value from N seeded rows with a 95% interval (a t
    interval from disjoint subsamples; see docs/large-stores.md). `A@all B@all` gives every
    layer of A against every layer of B (docs/metrics.md "Alignment across depth")."""
    check_space(space, permutations)
    options = {
        "kernel": kernel,
        "unbiased": unbiased,
        "sigma": sigma,
        "batch_size": batch_size,
        "backend": backend(device, fast),
        "sample": sample,
        "seed": seed,
        "space": space,
    }
    if _layer_matrix(refs, permutations):
        from mgap.engine.studies.layer_align import layer_cka_report

        _show_layers(layer_cka_report(*refs, **options), json_out)
        return
    from mgap.engine.studies.cka import cka_report

    report = cka_report(refs, **options)
    if permutations is not None:
        from mgap.engine.studies.nulls import cka_null

        report = report.with_fields(
            null=cka_null(
                refs,
                permutations,
                kernel=kernel,
                unbiased=unbiased,
                sigma=sigma,
                sample=sample,
                seed=seed,
                batch_size=batch_size,
            )
        )
    if json_out:
        print_json(report.to_json())
        return
    print_cka(report)


def print_cka(report: CkaReport) -> None:
    """The shaded CKA matrix, its sampled intervals, and the random-pairing baseline."""
    extra = f", batch {report.batch_size}" if report.batch_size is not None else ""
    estimate = report.estimate
    sampled = estimate is not None and estimate.mode == "sampled"
    if sampled:
        extra += f", estimated from {estimate.n} sampled rows (seed {estimate.seed})"
    title = f"{report.kernel} CKA, {report.estimator}{extra} (n = {report.n} shared images)"
    names, dims = report.names, report.dims or []
    stdout.print(_matrix_table(title, names, dims, report.matrix, shade=True))
    if sampled:
        stdout.print(_interval_table(names, dims, estimate.interval["matrix"]))
    if report.chance is not None:
        stdout.print(
            _matrix_table(
                "random-pairing baseline of biased CKA (≈ d/(n+d) for isotropic features)",
                names,
                dims,
                report.chance,
                shade=False,
            )
        )
        note("biased CKA is inflated unless d << n; --unbiased removes the bias")
    if report.sigma is not None:
        note("RBF σ per REF: " + ", ".join(fmt(s, 4) for s in report.sigma))
    if report.null is not None:
        print_null(report.null)


def knn(
    ref_a: str = typer.Argument(..., help="REF: STORE[:image|:text]."),
    ref_b: str = typer.Argument(..., help="REF: STORE[:image|:text]."),
    check: bool = CHECK_OPT,
    k: int = typer.Option(10, "--k", help="Neighbours per image."),
    device: str = DEVICE_OPT,
    fast: bool = FAST_OPT,
    sample: int | None = typer.Option(
        None,
        "--sample",
        min=2,
        help="Mutual k-NN from N seeded query rows (neighbours among all rows), with a "
        "95% bootstrap interval; CKNNA is then skipped.",
    ),
    seed: int = SEED_OPT,
    permutations: int | None = PERMUTATIONS_OPT,
    space: str = SPACE_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Mutual k-NN and CKNNA alignment (Huh et al. 2024) between two REFs; `A@all B@all`
    gives every layer pair and the best one (docs/metrics.md "Alignment across depth")."""
    check_space(space, permutations)
    options = {"k": k, "backend": backend(device, fast), "sample": sample, "seed": seed}
    if _layer_matrix([ref_a, ref_b], permutations):
        from mgap.engine.studies.layer_align import layer_knn_report

        _show_layers(layer_knn_report(ref_a, ref_b, **options, space=space), json_out)
        return
    from mgap.engine.studies.knn import knn_report

    report = knn_report(ref_a, ref_b, **options, space=space)
    if permutations is not None:
        from mgap.engine.studies.nulls import knn_null

        null = knn_null(
            ref_a, ref_b, permutations, k=k, backend=backend(device, fast), sample=sample, seed=seed
        )
        report = report.with_fields(null=null)
    if json_out:
        print_json(report.to_json())
        return
    print_knn(report)


def print_knn(report: KnnReport) -> None:
    from rich.table import Table

    table = Table(
        title=f"{report.names[0]} vs {report.names[1]} (k = {report.k}, n = {report.n})",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("mutual k-NN", shade_cell(report.mutual_knn))
    table.add_row("CKNNA", shade_cell(report.cknna))
    table.add_row("chance k/(n-1)", fmt(report.chance, 3))
    estimate = report.estimate
    if estimate is not None and estimate.mode == "sampled":
        low, high = estimate.interval["mutual_knn"]
        table.add_row(
            f"95% interval ({estimate.n} sampled rows)",
            f"[{fmt(low, 3)}, {fmt(high, 3)}]",
        )
    stdout.print(table)
    if report.null is not None:
        print_null(report.null)


def match(
    ref_a: str = typer.Argument(..., help="REF for the images, e.g. vision.h5."),
    ref_b: str = typer.Argument(..., help="REF for the texts, e.g. text.h5."),
    check: bool = CHECK_OPT,
    base: int | None = typer.Option(
        None, "--base", help="Known pairs (seeds). Default: min(320, n/2)."
    ),
    query: int | None = typer.Option(
        None, "--query", help="Pairs to recover. Default: min(100, n - base)."
    ),
    restarts: int = typer.Option(
        500, "--restarts", help="Random FAQ restarts, best objective kept (the paper: 500)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes for the restarts. Default: all cores."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Seed for base, queries and restarts."
    ),
    method: str = typer.Option(
        "qap", "--method", help="qap, local-cka, linear, relative, cosine or all."
    ),
    kernel: str = typer.Option(
        "rbf", "--kernel", help="QAP and local-CKA kernel: rbf (the paper) or linear."
    ),
    base_selection: str = typer.Option("kmeans", "--base-selection", help="kmeans or random."),
    stretch: bool = typer.Option(
        False, "--stretch", help="Divide each dimension by its std over all rows first."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Recover which text belongs to which image from a few known pairs (seeded matching)."""
    from mgap.engine.studies.matching import match_report

    report = match_report(
        ref_a,
        ref_b,
        n_base=base,
        n_query=query,
        restarts=restarts,
        seed=seed,
        method=method,
        kernel=kernel,
        stretch_dims=stretch,
        base_method=base_selection,
        workers=workers,
    )
    if json_out:
        print_json(report.to_json())
        return
    print_match(report, base_selection)


def print_match(report: MatchReport, base_selection: str) -> None:
    """One row per method: matching accuracy (shaded) and top-k hit rates; then the notes."""
    from rich.table import Table

    table = Table(
        title=(
            f"{report.names[0]} -> {report.names[1]}: base {report.n_base} ({base_selection}), "
            f"query {report.n_query}, chance {report.chance:.3f}"
        ),
        title_justify="left",
        header_style="bold",
    )
    for column in ("method", "matching acc", "top-1", "top-5", "top-10"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, result in report.methods.items():
        label = name
        if name == "qap":
            label = (
                f"qap ({result.kernel}, {result.restarts} restarts on "
                f"{result.workers} cores, {result.seconds:.1f} s)"
            )
        elif name == "local-cka":
            label = f"local-cka ({result.kernel})"
        table.add_row(
            label,
            shade_cell(result.accuracy),
            *(fmt(value, 3) for value in (result.top1, result.top5, result.top10)),
        )
    stdout.print(table)
    for name, result in report.methods.items():
        if result.note is not None:
            note(f"{name}: {result.note}")


def register(app: typer.Typer) -> None:
    app.command("cka")(cka)
    app.command("knn")(knn)
    app.command("match")(match)
