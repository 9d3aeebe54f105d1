"""Reading numbers back out of a Vega-Lite spec, for tests that compare them with the sims."""

from __future__ import annotations

from typing import Any, Iterator


def nodes(spec: Any) -> Iterator[dict]:
    """Every dict in a spec, depth first."""
    if isinstance(spec, dict):
        yield spec
        for v in spec.values():
            yield from nodes(v)
    elif isinstance(spec, list):
        for v in spec:
            yield from nodes(v)


def inline_data(spec: dict) -> list[list[dict]]:
    """Every inline dataset in a spec, in document order."""
    found = [n["data"]["values"] for n in nodes(spec)
             if isinstance(n.get("data"), dict) and "values" in n["data"]]
    found += list((spec.get("datasets") or {}).values())
    return found


def params(spec: dict) -> dict[str, dict]:
    """Every param of a spec by name."""
    return {p["name"]: p for n in nodes(spec) for p in n.get("params", []) if isinstance(p, dict)}


def tooltip_formats(spec: dict, field_prefix: str) -> list[str]:
    """The formats of tooltips/encodings on fields starting with field_prefix."""
    return [n["format"] for n in nodes(spec)
            if isinstance(n.get("field"), str) and n["field"].startswith(field_prefix) and "format" in n]


def slider_grid(spec: dict, name: str) -> list[float]:
    """The grid a grid slider indexes: the `[v0,v1,…][name]` literal in the spec's expressions."""
    import json
    import re

    found = {m for m in re.findall(r"\[([-\d.e+,]+)\]\[" + re.escape(name) + r"\]", json.dumps(spec))}
    assert len(found) == 1, found
    return [float(v) for v in found.pop().split(",")]
