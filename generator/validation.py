"""Typed, validated settings: the checks every grid dataclass runs on itself, and loading from
plain data.

A grid field declares its constraints in its metadata (``positive``, ``bounded``, ``text``,
``min_items`` / ``max_items``, ``unique_first``). ``validate`` checks a built dataclass against
its annotations and metadata; ``from_mapping`` builds one from nested plain data (mkdocs.yml's
``extra.grids``, a JSON file), rejecting unknown keys. Every failure is a ``GridError`` whose
message names the field (``grids.sampling.temperatures[0]``) and the value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import PurePosixPath
from typing import Any, Mapping


class GridError(ValueError):
    """A grid value or config key that cannot be simulated; the message names the field."""


# ---------------------------------------------------------------------------------------------
# Field constraints


# Where a field declares no bound of its own: no grid may be longer (each value is simulated,
# charted and embedded in a page), and no number larger in size (counts, seeds and sizes stay
# far below it; larger ones only make a build run for hours or overflow).
MAX_ITEMS = 64
MAX_MAGNITUDE = 1e9


def positive(lo_exclusive: float = 0.0, hi: float | None = None, *, grid: bool = False,
             smallest: float | None = None, why: str = "") -> dict:
    """Metadata: every number > lo_exclusive (and <= hi, and >= smallest where given);
    grid=True also asks for a sorted grid; `why` explains the bounds in the error message."""
    return {"gt": lo_exclusive, "ge": smallest, "le": hi, "grid": grid, "why": why}


def bounded(lo: float, hi: float | None = None, *, grid: bool = False, why: str = "") -> dict:
    """Metadata: every number in [lo, hi]; grid=True also asks for a sorted grid; `why`
    explains the bounds in the error message."""
    return {"ge": lo, "le": hi, "grid": grid, "why": why}


def text(max_len: int = 2000, *, non_empty: bool = True) -> dict:
    """Metadata: every string non-empty (unless allowed) and at most max_len characters."""
    return {"max_len": max_len, "non_empty": non_empty}


def content_file(max_len: int = 200) -> dict:
    """Metadata: a relative path (or glob pattern) that stays inside content/."""
    return {**text(max_len), "content_file": True}


# ---------------------------------------------------------------------------------------------
# Loading from plain data


def from_mapping(cls: type, mapping: Any, path: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise GridError(f"{path}: expected a mapping of settings, got {mapping!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in mapping:
        if not isinstance(key, str):
            raise GridError(f"{path}: setting names must be text, got {key!r}")
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise GridError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in mapping.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_mapping(hint, value, f"{path}.{name}")
        else:
            kwargs[name] = _coerce(value, hint, f"{path}.{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """Convert plain data (lists, numbers, strings) to the annotated type, or raise GridError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise GridError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise GridError(f"{path}: expected {len(args)} items, got {value!r}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GridError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise GridError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GridError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise GridError(f"{path}: expected text, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise GridError(f"{path}: expected true or false, got {value!r}")
        return value
    raise TypeError(f"{path}: unsupported annotation {hint!r}")  # a bug in a grid declaration


# ---------------------------------------------------------------------------------------------
# Validation of a built dataclass


def validate(grid: Any, path: str) -> None:
    """Check every field of a grid dataclass against its type and metadata; raise GridError."""
    hints = typing.get_type_hints(type(grid))
    for f in dataclasses.fields(grid):
        value = getattr(grid, f.name)
        where = f"{path}.{f.name}"
        _check_type(value, hints[f.name], where)
        _check_constraints(value, f.metadata, where)


def _check_type(value: Any, hint: Any, path: str) -> None:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise GridError(f"{path}: expected {hint.__name__}, got {value!r}")
        return
    coerced = _coerce(value, hint, path)
    if isinstance(value, list) or coerced != value:
        raise GridError(f"{path}: expected {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return "a tuple"
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _check_constraints(value: Any, meta: Mapping[str, Any], path: str) -> None:
    items = value if isinstance(value, tuple) else (value,)
    if "min_items" in meta and len(items) < meta["min_items"]:
        raise GridError(f"{path}: needs at least {meta['min_items']} items, got {len(items)}")
    limit = meta.get("max_items", MAX_ITEMS)
    if isinstance(value, tuple) and len(items) > limit:
        raise GridError(f"{path}: allows at most {limit} items, got {len(items)}"
                        + ("" if "max_items" in meta else " (every simulated value is charted on a page)"))
    if meta.get("unique_first"):
        firsts = [item[0] for item in items]
        dupes = sorted({x for x in firsts if firsts.count(x) > 1})
        if dupes:
            raise GridError(f"{path}: duplicate entry {dupes[0]!r}")
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(value, tuple) else path
        check_scalar(item, meta, where)
    if meta.get("grid"):
        if not items:
            raise GridError(f"{path}: the grid is empty")
        for i, (a, b) in enumerate(zip(items, items[1:])):
            if not a < b:
                raise GridError(
                    f"{path}[{i + 1}]: grid must be strictly increasing, got {b!r} after {a!r}"
                )


def check_scalar(item: Any, meta: Mapping[str, Any], path: str) -> None:
    """Check one value against a field's metadata; raise GridError naming `path`."""
    if isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise GridError(f"{path}: not valid Unicode text (a lone surrogate "
                            f"{item[exc.start]!r} at character {exc.start})") from exc
        if meta.get("non_empty") and not item:
            raise GridError(f"{path}: must not be empty")
        if "max_len" in meta and len(item) > meta["max_len"]:
            raise GridError(f"{path}: longer than {meta['max_len']} characters")
        if meta.get("content_file"):
            parts = PurePosixPath(item).parts
            if item.startswith(("/", "\\")) or ":" in item or "\\" in item or ".." in parts:
                raise GridError(f"{path}: {item!r} must be a relative path inside content/")
        return
    if isinstance(item, tuple):
        return
    why = f" ({meta['why']})" if meta.get("why") else ""
    if not math.isfinite(item):
        raise GridError(f"{path}: {item!r} is not a finite number")
    if meta.get("gt") is not None and not item > meta["gt"]:
        raise GridError(f"{path}: {item!r} must be > {meta['gt']}{why}")
    if meta.get("ge") is not None and not item >= meta["ge"]:
        raise GridError(f"{path}: {item!r} must be >= {meta['ge']}{why}")
    if meta.get("le") is not None and not item <= meta["le"]:
        raise GridError(f"{path}: {item!r} must be <= {meta['le']}{why}")
    if abs(item) > MAX_MAGNITUDE:
        raise GridError(f"{path}: {item!r} is larger than {MAX_MAGNITUDE:.0e}, the most any "
                        "setting allows")
