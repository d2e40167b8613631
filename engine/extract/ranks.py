"""One rank of a torchrun/srun extraction: extract my share, then rank 0 merges and verifies.

Each rank owns a contiguous, block-aligned range of image rows (and the captions of
those images) and writes it to its own partial store, `<store>.ranks/rank-R-of-W.h5`,
with the usual block/resume semantics: killing a rank, or the whole job, and rerunning
the same command redoes only the missing blocks. The plan (world size, block size,
shares) is written beside the partial stores, so a rerun with another world size gets
one clear line instead of mixing two partitions. When every rank is complete, rank 0
copies the shares into the final store (see `mgap.store.merge`), embeds the zero-shot
prompts, verifies the result and removes the rank files.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from mgap.core.errors import MgapError, StoreError, UsageError
from mgap.engine.datasets import Manifest
from mgap.engine.extract.distributed import (
    RankEnv,
    close_group,
    gather,
    init_group,
    rank_device,
    shares,
)
from mgap.engine.extract.finish import Reporter
from mgap.engine.extract.job import ExtractJob
from mgap.engine.extract.prepare import StoreTarget, provenance, store_layout
from mgap.engine.extract.request import CheckedRequest
from mgap.engine.extract.texts import embed_prompts
from mgap.engine.reports.pipeline import ExtractedStore
from mgap.store import schema as S
from mgap.store.lock import StoreLock
from mgap.store.merge import merge_rank_stores
from mgap.store.naming import refuse_link, sidecar
from mgap.store.progress import write_progress
from mgap.store.reader import Store
from mgap.store.verify import verify_store
from mgap.store.writer import StoreLayout, StoreWriter, create_store

PLAN_FILE = "plan.json"


def ranks_dir(final: Path) -> Path:
    """The folder of a store's partial rank stores, beside it (not listed by `mgap ls`)."""
    return sidecar(final, ".ranks")


def rank_store(final: Path, rank: int, world_size: int) -> Path:
    return ranks_dir(final) / f"rank-{rank:05d}-of-{world_size:05d}.h5"


class RankFailed(MgapError):
    """Another rank died or stopped before finishing its share."""


def _plan(n_rows: int, block_rows: int, world_size: int) -> dict[str, object]:
    return {
        "world_size": world_size,
        "block_rows": block_rows,
        "n_images": n_rows,
        "shares": [list(s) for s in shares(n_rows, block_rows, world_size)],
    }


def _check_plan(final: Path, plan: dict[str, object], overwrite: bool) -> str:
    """'' when the partial stores beside `final` follow `plan` (then it is recorded)."""
    folder = ranks_dir(final)
    refuse_link(folder)
    if overwrite and folder.exists():
        shutil.rmtree(folder)
    path = folder / PLAN_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != plan:
            return (
                f"{folder} holds shares of a run with world size {old['world_size']} and "
                f"--block-rows {old['block_rows']} over {old['n_images']} images, this run has "
                f"world size {plan['world_size']} and --block-rows {plan['block_rows']} over "
                f"{plan['n_images']}; rerun with {old['world_size']} processes and the same "
                "options, or pass --overwrite to start again"
            )
        return ""
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan), encoding="utf-8")
    return ""


class DistributedJob:
    """This rank's part of the job; rank 0 also plans and merges."""

    def __init__(self, request: CheckedRequest, reporter: Reporter | None, rank: RankEnv) -> None:
        self.request = request
        self.reporter = reporter
        self.rank = rank
        self.started = time.time()

    def run(self) -> list[ExtractedStore]:
        manifest = self.request.manifest
        n, w = len(manifest.records), self.rank.world_size
        finals = {m.spec: m.store for m in self.request.models}
        if self.request.overwrite and self.rank.is_main:
            for final in finals.values():
                final.unlink(missing_ok=True)
        gather(None)  # every rank sees the same final stores from here on
        pending = [s for s, p in finals.items() if not _complete(p)]
        if not pending:
            return [_done_summary(p, s, "already complete") for s, p in finals.items()]
        plan = _plan(n, self.request.block_rows, w)
        errors = gather(
            "".join(_check_plan(finals[s], plan, self.request.overwrite) for s in pending)
            if self.rank.is_main
            else ""
        )
        if errors[0]:
            raise UsageError(str(errors[0]))
        start, stop = plan["shares"][self.rank.rank]
        job, status = self._extract_share(manifest, start, stop, finals, pending)
        rate = self._check_ranks(status, job.images_per_s if job else 0.0)
        if not self.rank.is_main:
            return []
        for target in job.targets:
            self._merge(target, manifest, finals[target.model.spec.text], plan)
        out = [_done_summary(p, s, self._note(s in pending)) for s, p in finals.items()]
        for summary in out:
            summary.images_per_s = round(rate, 2) if summary.model in pending else 0.0
        return out

    def _note(self, merged: bool) -> str:
        return f"merged from {self.rank.world_size} ranks" if merged else "already complete"

    def _extract_share(
        self,
        manifest: Manifest,
        start: int,
        stop: int,
        finals: dict[str, Path],
        pending: list[str],
    ) -> tuple[ExtractJob | None, str]:
        if stop <= start:
            return None, S.STATUS_COMPLETE  # more ranks than blocks: nothing to do here
        w, r = self.rank.world_size, self.rank.rank
        request = replace(
            self.request,
            models=tuple(
                replace(m, store=rank_store(finals[m.spec], r, w))
                for m in self.request.models
                if m.spec in pending
            ),
            device=rank_device(self.request.device, self.rank),
            overwrite=False,
            resume=True,
            manifest=manifest.slice(start, stop),
        )
        job = ExtractJob(request, self.reporter, with_prompts=False)
        summaries = job.run()
        statuses = {s.status for s in summaries}
        return job, S.STATUS_COMPLETE if statuses == {S.STATUS_COMPLETE} else statuses.pop()

    def _check_ranks(self, status: str, images_per_s: float) -> float:
        """Wait for every rank; raise unless all finished. Returns the job's images/s."""
        r, w = self.rank.rank, self.rank.world_size
        if status != S.STATUS_COMPLETE:
            raise RankFailed(
                f"rank {r} of {w} stopped ({status}) before finishing its share",
                hint="rerun the same command: blocks already written are kept",
            )
        try:
            results = gather((status, images_per_s))
        except RuntimeError as exc:  # gloo: a peer closed its connection (it died)
            raise RankFailed(
                f"another rank of {w} died before finishing its share ({str(exc).splitlines()[0][:120]})",
                hint="rerun the same command: blocks already written are kept",
            ) from exc
        bad = [i for i, (s, _) in enumerate(results) if s != S.STATUS_COMPLETE]
        if bad:
            raise RankFailed(
                f"rank {bad[0]} of {w} did not finish its share ({results[bad[0]][0]})",
                hint="rerun the same command: blocks already written are kept",
            )
        return float(sum(rate for _, rate in results))

    def _merge(
        self, target: StoreTarget, manifest: Manifest, final: Path, plan: dict[str, object]
    ) -> None:
        """Copy every rank's share into `final`, add the prompts, verify, drop the shares."""
        w = self.rank.world_size
        parts = [rank_store(final, r, w) for r in range(w)]
        layout = store_layout(manifest)
        made = provenance(self.request, target.model, manifest, target_device(parts[0]), "")
        made.update(
            decode=Store(parts[0]).attrs.get("decode", ""),
            rows_sha256=layout.digest(),
            world_size=w,
            rank_shares=plan["shares"],
            rank_devices=rank_devices(parts),
        )
        with StoreLock(final, wait=self.request.wait):
            self._write_merged(target, manifest, final, plan, layout, made)
        shutil.rmtree(ranks_dir(final))

    def _write_merged(
        self,
        target: StoreTarget,
        manifest: Manifest,
        final: Path,
        plan: dict[str, object],
        layout: StoreLayout,
        provenance: dict[str, object],
    ) -> None:
        """Create `final` and fill it from the rank stores (a merge cut short is redone)."""
        w = self.rank.world_size
        parts = [rank_store(final, r, w) for r in range(w)]
        first = StoreWriter(parts[0])
        final.unlink(missing_ok=True)  # a merge cut short is redone from the shares
        writer = create_store(
            final,
            layout,
            provenance,
            image_dim=first.image_dim,
            text_dim=first.text_dim,
            dtype=self.request.store_dtype,
            block_rows=int(plan["block_rows"]),
            perturbations=first.perturbations,
            perturb_seed=self.request.perturb_seed,
        )
        merge_rank_stores(writer, parts, [s[0] for s in plan["shares"]])
        with torch.inference_mode():
            embed_prompts(target.model, writer, manifest)
        writer.finish(S.STATUS_COMPLETE, seconds=round(time.time() - self.started, 3))
        problems = verify_store(final)
        if problems:
            raise StoreError(f"the merged store {final} failed verification: {problems[0]}")
        store = Store(final)
        write_progress(
            final,
            status=S.STATUS_COMPLETE,
            phase="done",
            model=target.model.spec.text,
            store=str(final),
            n_images=store.n_images_total,
            images_done=store.n_images_total,
            n_texts=store.n_texts_total,
            texts_done=store.n_texts_total,
            skipped=len(store.skipped),
        )


def target_device(part: Path) -> str:
    return str(Store(part).attrs.get("device", ""))


def rank_devices(parts: list[Path]) -> list[str]:
    """The device each rank ran on, from its partial store ('' for an empty share)."""
    return [target_device(p) if p.exists() else "" for p in parts]


def _complete(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        return Store(path).status == S.STATUS_COMPLETE
    except StoreError:
        return False


def _done_summary(path: Path, spec: str, note: str) -> ExtractedStore:
    store = Store(path)
    return ExtractedStore(
        store=str(path),
        model=spec,
        status=store.status,
        n_images=store.n_images,
        n_texts=store.n_texts,
        skipped=len(store.skipped),
        seconds=float(store.attrs.get("seconds", 0.0) or 0.0),
        images_per_s=0.0,
        device=str(store.attrs.get("device", "")),
        dtype=str(store.attrs.get("precision", "")),
        note=note,
    )


def run_distributed(
    request: CheckedRequest, reporter: Reporter | None, rank: RankEnv
) -> list[ExtractedStore]:
    """This rank's share of `request`; rank 0 returns the merged stores' summaries."""
    init_group(rank)
    try:
        return DistributedJob(request, reporter, rank).run()
    finally:
        close_group()
