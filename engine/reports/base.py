"""Typed report documents: one dataclass per `--json` document, read and written by name.

A report's dataclass declares the keys the documentation promises, with their types.
`Report.from_json(doc)` builds it from the engine's document and fails with one line
naming the missing key (so a renamed key breaks the engine's own tests, not a table at
run time); `to_json()` gives the document back. Keys a report has beyond its declared
fields (backend details, options others added) are kept in `extra`, so nothing is lost.
A JSON key that is not a Python name (`R@1`, `lambda`) is declared with `key("R@1")`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from mgap.core.errors import MgapError

R = TypeVar("R", bound="Report")


class ReportShapeError(MgapError):
    """A document lacks a key its report type declares (an engine bug, not user input)."""


def key(name: str, **kwargs: Any) -> Any:
    """A field whose JSON key is `name` (for keys that are not Python identifiers)."""
    return field(metadata={"key": name}, **kwargs)


def json_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def declared(cls: type) -> list[dataclasses.Field]:
    """The fields that map to JSON keys (not the bookkeeping ones)."""
    return [f for f in dataclasses.fields(cls) if not f.name.startswith("_") and f.name != "extra"]


def _optional(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _parse(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _parse(inner[0], value) if len(inner) == 1 else value
    if isinstance(tp, type) and issubclass(tp, Report):
        return tp.from_json(value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(tp) or (Any,)
        return [_parse(item, v) for v in value]
    if origin is dict and isinstance(value, dict):
        args = typing.get_args(tp)
        return {k: _parse(args[1], v) for k, v in value.items()} if args else value
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, Report):
        return value.to_json()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


@dataclass(kw_only=True)
class Report:
    """Base of every report type; subclasses are dataclasses of the documented keys."""

    #: the `mgap` command whose `--json` prints this report at top level (None: a part)
    COMMAND: ClassVar[str | None] = None
    #: the command prints a JSON array of these rather than one object
    AS_LIST: ClassVar[bool] = False
    #: other documents the same command prints in another mode: (type, key only it has)
    VARIANTS: ClassVar[tuple[tuple[type[Report], str], ...]] = ()

    @classmethod
    def variant(cls, doc: dict[str, Any]) -> type[Report]:
        """The type of `doc` among this command's variants (itself when no variant matches)."""
        for other, marker in cls.VARIANTS:
            if marker in doc:
                return other
        return cls

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False, compare=False)
    _absent: frozenset[str] = field(default=frozenset(), kw_only=True, repr=False, compare=False)
    _order: tuple[str, ...] = field(default=(), kw_only=True, repr=False, compare=False)

    @classmethod
    def from_json(cls: type[R], doc: dict[str, Any]) -> R:
        if not isinstance(doc, dict):
            raise ReportShapeError(f"{cls.__name__} needs a JSON object, got {type(doc).__name__}")
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        absent = set()
        for f in declared(cls):
            name = json_key(f)
            if name not in doc:
                if not _optional(f):
                    raise ReportShapeError(f"{cls.__name__}: the document has no {name!r} key")
                absent.add(name)
                continue
            kwargs[f.name] = _parse(hints[f.name], doc[name])
        known = {json_key(f) for f in declared(cls)}
        extra = {k: v for k, v in doc.items() if k not in known}
        return cls(**kwargs, extra=extra, _absent=frozenset(absent), _order=tuple(doc))

    @classmethod
    def build(cls: type[R], **fields: Any) -> R:
        """A report from typed values, as a study makes it: the keyword order is the
        document's key order, and an optional field left out is absent from the document
        (as when `from_json` finds no key for it)."""
        keys = {f.name: json_key(f) for f in declared(cls)}
        absent = frozenset(keys[name] for name in keys if name not in fields)
        return cls(**fields, _absent=absent, _order=tuple(keys[name] for name in fields))

    def with_fields(self: R, **fields: Any) -> R:
        """A copy with `fields` set and written: a part computed after the study (a
        permutation null) joins the document after the keys it already has."""
        keys = {f.name: json_key(f) for f in declared(type(self))}
        added = tuple(keys[name] for name in fields if keys[name] not in self._order)
        return dataclasses.replace(
            self,
            **fields,
            _absent=self._absent - {keys[name] for name in fields},
            _order=self._order + added if self._order else (),
        )

    def to_json(self) -> dict[str, Any]:
        """The document: declared keys (those present when parsed) and the extra ones, in
        the order of the document it was parsed from (declared order otherwise)."""
        out = {
            json_key(f): _dump(getattr(self, f.name))
            for f in declared(type(self))
            if json_key(f) not in self._absent
        }
        out.update(self.extra)
        first = [k for k in self._order if k in out]
        return {k: out[k] for k in [*first, *(k for k in out if k not in self._order)]}
