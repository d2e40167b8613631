"""Options shared by the analysis commands that run quadratic kernels (docs/design.md §10).

`--device auto|cpu|cuda[:i]` and `--fast` choose the compute backend; `--sample N` and
`--seed` give seeded estimates with 95 % intervals; `--exact` forces the exact
computation where a command samples by default. The backend module imports torch only
for a CUDA device, so these options cost nothing at start-up.
"""

from __future__ import annotations

import typer

DEVICE_OPT = typer.Option(
    "auto", "--device", help="Where heavy products run: auto (CUDA when present), cpu, cuda[:i]."
)
FAST_OPT = typer.Option(
    False, "--fast", help="Allow TF32 products on CUDA (faster, ~1e-3 relative error)."
)
SAMPLE_OPT = typer.Option(
    None,
    "--sample",
    min=2,
    help="Estimate from N seeded rows per side, with 95% intervals (the JSON names the method).",
)
SEED_OPT = typer.Option(0, "--seed", help="Seed of --sample and of its interval.")
EXACT_OPT = typer.Option(
    False, "--exact", help="Compute exactly even where the default would sample."
)


def backend(device: str, fast: bool):
    """The compute backend named by --device/--fast (a usage error if it is not there)."""
    from mgap.engine.compute.backend import resolve_backend

    return resolve_backend(device, fast=fast)
