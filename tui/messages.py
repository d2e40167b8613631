"""Typed messages: what the TUI's thread workers hand back to the panes that started them.

A worker function returns one of these (or posts several, for results that stream in);
`WorkerHost` posts the returned message on success and turns a raised exception into
`WorkerFailed`, so no pane copies a try/except around its workers. Result messages do not
bubble: they are for the pane that asked. `WorkerFailed` bubbles to the app, which shows
every failure as one notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from mgap.engine.reports.analysis import CkaReport, GapReport, RetrievalReport
from mgap.engine.reports.pipeline import CatalogModel
from mgap.store.listing import StoreListing
from mgap.tui.analysis_jobs import WorkProgress
from mgap.tui.jobs import JobRow
from mgap.tui.sources import DatasetRow


@dataclass
class WorkerFailed(Message):
    """A worker of `group` raised: `title` names the pane and the computation for people,
    `key` is what the worker computed for (a store path, a (path, method) pair, ...)."""

    title: str
    message: str
    group: str
    key: Any = None


@dataclass
class GapComputed(Message, bubble=False):
    """The gap report (with per-category rows) of the store at `path`; `partial` when it is
    the O(n·d) summary a large store shows before its category table is computed."""

    path: Path
    report: GapReport
    partial: bool = False


@dataclass
class JobProgressed(Message, bubble=False):
    """How far the analysis job behind the `group` view of `path` got (its work file)."""

    path: Path
    group: str
    progress: WorkProgress


@dataclass
class RetrievalComputed(Message, bubble=False):
    """The retrieval report of `path`; None when the store lacks a side."""

    path: Path
    report: RetrievalReport | None


@dataclass
class CkaComputed(Message, bubble=False):
    """The linear CKA matrix of the stores `paths`, in that order."""

    paths: tuple[Path, ...]
    report: CkaReport


@dataclass
class ProjectionComputed(Message, bubble=False):
    """A 2-D projection (an engine `Projection`) of `path` by `method`."""

    path: Path
    method: str
    projection: Any


@dataclass
class StoresScanned(Message, bubble=False):
    """The store directory's entries, sorted by name."""

    entries: list[StoreListing]


@dataclass
class JobsScanned(Message, bubble=False):
    """The jobs known from progress files and launches, and the log tail of the cursor's job."""

    rows: list[JobRow]
    log_lines: list[str]


@dataclass
class CatalogLoaded(Message, bubble=False):
    """The model catalog from `mgap models --json`."""

    rows: list[CatalogModel]


@dataclass
class DatasetsDetected(Message, bubble=False):
    """The rows one dataset root describes (one per detected layout, or one with an error)."""

    rows: list[DatasetRow]
