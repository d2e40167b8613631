"""The `mgap demo` pipeline: train toy:NAME if needed, extract it and its random twin, summarise.

Lives in the engine so the CLI only parses options, prints and opens the TUI. Offline on
any machine: the synthetic dataset is generated, the toy trains on the CPU in about a
minute (seconds with `quick`), and extraction runs in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from mgap.core.errors import MgapError
from mgap.engine.reports.base import declared
from mgap.engine.reports.pipeline import DemoReport, DemoStore, ToyTrainingReport
from mgap.engine.toy.config import TrainConfig

DEMO_MODEL = "demo"
QUICK_MODEL = "demo-quick"
#: the quick budget: a tiny toy and 100 test images, for smoke tests
QUICK_TRAINING = TrainConfig(epochs=2, n_train=400, n_test=100)


@dataclass
class DemoRun:
    """What the demo produced: the toy, whether it was trained now, and its two stores."""

    toy_model: str
    trained_now: bool
    training: TrainConfig
    store_dir: Path
    stores: list[Path]  # [trained toy, random-initialised twin]
    #: the training report when the toy was trained by this run
    trained: ToyTrainingReport | None = None

    @property
    def tui_selection(self) -> list[Path]:
        """Stores for the TUI, in the order whose last one (the trained toy) Results shows."""
        return self.stores[::-1]


Log = Callable[[str], None]


def train_and_save(
    name: str,
    config: TrainConfig,
    log: Log | None = None,
    train_log: Log | None = None,
    checkpoints: Path | None = None,
) -> ToyTrainingReport:
    """Train toy:NAME on the synthetic dataset and save it; returns its training report.

    `log` gets the one-line announcement, `train_log` the per-epoch lines; with
    `checkpoints`, every epoch k is also saved as `checkpoints/epoch_k.pt`.
    """
    from mgap.engine.toy.storage import save_checkpoint, save_toy
    from mgap.engine.toy.train import train_toy

    if log is not None:
        log(f"training toy:{name} on {config.n_train} synthetic images ({config.epochs} epochs)")
    save = None if checkpoints is None else partial(save_checkpoint, checkpoints)
    result = train_toy(config, log=train_log, on_epoch=save)
    folder = save_toy(name, result.model, result.config, result.metrics)
    names = {f.name for f in declared(ToyTrainingReport)}
    return ToyTrainingReport(
        model=f"toy:{name}",
        folder=str(folder),
        **{k: v for k, v in result.metrics.items() if k in names},
        extra={k: v for k, v in result.metrics.items() if k not in names},
    )


def saved_training(name: str) -> TrainConfig:
    """The training config toy:NAME was saved with (keys this version does not know dropped)."""
    from mgap.engine.toy.storage import load_toy

    saved = load_toy(name).config["training"]
    return TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})


def stale_stores(store_dir: Path, models: list[str], weights: Path) -> bool:
    """Whether a store of these models predates the toy's weights (it was retrained since)."""
    from mgap.store.naming import store_filename

    limit = weights.stat().st_mtime
    paths = [store_dir / store_filename("synthetic", "test", m) for m in models]
    return any(p.exists() and p.stat().st_mtime < limit for p in paths)


def run_demo(
    store_dir: Path,
    *,
    quick: bool = False,
    retrain: bool = False,
    log: Log | None = None,
    train_log: Log | None = None,
) -> DemoRun:
    """Train (if missing or `retrain`), then extract toy:NAME and toy:NAME@random on the
    synthetic test split into `store_dir`, re-extracting stores older than the weights."""
    from mgap.engine.extract.request import ExtractRequest
    from mgap.engine.extract.run import run_extraction
    from mgap.engine.toy.storage import load_toy, toy_exists

    name = QUICK_MODEL if quick else DEMO_MODEL
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MgapError(
            f"cannot create the store directory {store_dir}: {exc.strerror}",
            hint="pass a writable --store-dir or set MGAP_STORE_DIR",
        ) from exc
    trained = None
    if retrain or not toy_exists(name):
        trained = train_and_save(name, QUICK_TRAINING if quick else TrainConfig(), log, train_log)
    training = saved_training(name)
    models = [f"toy:{name}", f"toy:{name}@random"]
    stale = stale_stores(store_dir, models, load_toy(name).folder / "config.json")
    if log is not None:
        log(f"extracting {', '.join(models)} on the synthetic test split into {store_dir}")
    summaries = run_extraction(
        ExtractRequest(
            models=models,
            dataset="synthetic",
            split="test",
            dataset_options=training.dataset_options("test"),
            batch_size=64,
            device="cpu",
            store_dtype="float16",
            store_dir=store_dir,
            overwrite=retrain or trained is not None or stale,
            num_workers=0,
            command=" ".join(["mgap", *sys.argv[1:]]),
        )
    )
    return DemoRun(
        toy_model=f"toy:{name}",
        trained_now=trained is not None,
        training=training,
        store_dir=store_dir,
        stores=[Path(s.store) for s in summaries],
        trained=trained,
    )


def store_summary(path: Path) -> DemoStore:
    """Gap, retrieval, zero-shot and object bias of one demo store (the demo's table)."""
    from mgap.engine.measures.gap import gap_metrics
    from mgap.engine.measures.retrieval import retrieval_metrics
    from mgap.engine.studies.object_bias import object_bias_report
    from mgap.engine.studies.zeroshot import zero_shot_report
    from mgap.store import open_store

    store = open_store(path)
    X, Y, index = store.image_embeddings(), store.text_embeddings(), store.text_image_index
    gap = gap_metrics(X, Y, index)
    retrieval = retrieval_metrics(X, Y, index)
    bias = object_bias_report(store)
    zero_shot = {"shape": zero_shot_report(store, "category").accuracy}
    zero_shot.update({k: v for k, v in bias.zero_shot.items() if k != "object"})
    return DemoStore(
        model=store.model,
        store=str(path),
        n_images=store.n_images,
        n_texts=store.n_texts,
        gap={k: gap[k] for k in ("l2m", "rmg", "mean_paired_cosine", "l2i")},
        retrieval={
            side: {k: retrieval[side][k] for k in ("R@1", "R@5", "R@10")} for side in ("i2t", "t2i")
        },
        zero_shot=zero_shot,
        object_bias={
            side: getattr(bias, side).object_bias
            for side in ("image", "text")
            if getattr(bias, side) is not None
        },
    )


def demo_report(run: DemoRun) -> DemoReport:
    """The `mgap demo --json` report."""
    return DemoReport(
        toy_model=run.toy_model,
        trained_now=run.trained_now,
        training=asdict(run.training),
        store_dir=str(run.store_dir),
        stores=[store_summary(p) for p in run.stores],
    )
