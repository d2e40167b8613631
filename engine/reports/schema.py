"""JSON Schema (draft 2020-12) generated from the report dataclasses, for `mgap schema`.

Each declared field becomes a property of its JSON type; fields without a default are
required; nested reports go to `$defs`. Objects allow further properties, because a
report may carry keys beyond the declared ones (see `Report.extra`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from mgap.engine.reports.base import Report, declared, json_key

PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if tp is Any:
        return {}
    if tp in PRIMITIVES:
        return {"type": PRIMITIVES[tp]}
    if tp is type(None):
        return {"type": "null"}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema(a, defs) for a in typing.get_args(tp)]}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin is list:
        args = typing.get_args(tp)
        return {"type": "array", "items": _schema(args[0], defs)} if args else {"type": "array"}
    if origin is dict:
        args = typing.get_args(tp)
        out: dict[str, Any] = {"type": "object"}
        if args:
            out["additionalProperties"] = _schema(args[1], defs)
        return out
    if isinstance(tp, type) and issubclass(tp, Report):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # reserve: a report may contain itself
            defs[tp.__name__] = _object(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    raise TypeError(f"no JSON Schema for {tp!r}")


def _object(cls: type[Report], defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = declared(cls)
    out: dict[str, Any] = {
        "type": "object",
        "title": cls.__name__,
        "properties": {json_key(f): _schema(hints[f.name], defs) for f in fields},
        "required": [
            json_key(f)
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ],
        "additionalProperties": True,
    }
    if cls.__doc__:
        out["description"] = " ".join(cls.__doc__.split())
    return out


def json_schema(cls: type[Report]) -> dict[str, Any]:
    """The JSON Schema of a report type's document."""
    defs: dict[str, Any] = {}
    top = _object(cls, defs)
    variants = cls.__dict__.get("VARIANTS", ())  # a command's own, not a subclass's
    if variants:
        top = {"anyOf": [top, *(_object(other, defs) for other, _ in variants)]}
    if cls.AS_LIST:
        top = {"type": "array", "title": f"list of {cls.__name__}", "items": top}
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **top}
    if cls.COMMAND:
        doc["$id"] = f"mgap:{cls.COMMAND.replace(' ', '-')}"
    if defs:
        doc["$defs"] = defs
    return doc
