"""The two controlled experiments of the gap papers on toy CLIPs: gap vs temperature and
gap vs caption detail. Each value trains one toy (saved as `sweep-<kind>-<value>`, so it
can be extracted and browsed later) and measures the gap on the held-out test split, whose
captions have the same detail as the model's training captions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from mgap.engine.datasets.synthetic import load as load_synthetic
from mgap.engine.reports.pipeline import ToySweepReport
from mgap.engine.toy.config import SWEEPS, TrainConfig
from mgap.engine.toy.storage import save_toy
from mgap.engine.toy.train import (
    TrainResult,
    encode_pixels,
    encode_texts,
    render_pixels,
    train_toy,
)


def held_out_embeddings(
    result: TrainResult, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image embeddings, caption embeddings, caption -> image index) on the test split."""
    test = load_synthetic(None, "test", kind="synthetic", **config.dataset_options("test"))
    X = encode_pixels(result.model, render_pixels(test, result.architecture.image_size))
    captions, rows = test.captions_and_rows()
    Y = encode_texts(result.model, result.tokenizer, captions)
    return X.numpy().astype(np.float64), Y.numpy().astype(np.float64), rows


def measure(result: TrainResult, config: TrainConfig) -> dict[str, Any]:
    from mgap.engine.measures.gap import gap_metrics
    from mgap.engine.measures.retrieval import retrieval_metrics

    X, Y, rows = held_out_embeddings(result, config)
    gap = gap_metrics(X, Y, rows)
    retrieval = retrieval_metrics(X, Y, rows)
    return {
        "l2m": gap["l2m"],
        "rmg": gap["rmg"],
        "mean_paired_cosine": gap["mean_paired_cosine"],
        "intra_image_cosine": gap["intra_image_cosine"],
        "intra_text_cosine": gap["intra_text_cosine"],
        "t2i_R@1": retrieval["t2i"]["R@1"],
        "zero_shot_shape_accuracy": result.metrics["zero_shot_shape_accuracy"],
        "zero_shot_attribute_accuracy": result.metrics["zero_shot_attribute_accuracy"],
        "final_temperature": result.metrics["final_temperature"],
        "loss_last_epoch": result.metrics["loss_last_epoch"],
        "seconds": result.metrics["seconds"],
    }


def run_sweep(
    kind: str,
    values: Sequence[float],
    base: TrainConfig,
    *,
    log: Callable[[str], None] | None = None,
) -> ToySweepReport:
    """Train one toy per value (everything else from `base`) and tabulate its gap."""
    log = log or (lambda message: None)
    field = SWEEPS[kind]
    configs = [replace(base, **{field: float(v)}) for v in values]
    for config in configs:
        config.validate()
    rows = []
    for value, config in zip(values, configs, strict=True):
        name = f"sweep-{kind}-{value:g}"
        log(f"training {name}")
        result = train_toy(config)
        save_toy(name, result.model, result.config, result.metrics)
        rows.append({kind: float(value), "model": f"toy:{name}", **measure(result, config)})
        log(f"{name}: L2M {rows[-1]['l2m']:.4f}, RMG {rows[-1]['rmg']:.4f}")
    return ToySweepReport(sweep=kind, base=asdict(base), rows=rows)
