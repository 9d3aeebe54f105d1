"""Injected markup in every text input never becomes markup on a page.

Every str field of every grid (and every str inside a tuple field) and every text of the RAG
chapter's data files gets a payload of `<script>`, `javascript:` links, images from another
host, raw HTML with event attributes and attribute lists. A field the grid layer rejects must
say which field; everything accepted goes into one build, whose pages must hold no script
that the site does not ship, no link to anything but a page or file of the site, no image from
elsewhere, and no event attribute.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import typing
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from generator import grids as grids_module
from tests.conftest import CACHE_DIR, ROOT, copy_checkout, mkdocs_build

pytestmark = pytest.mark.slow

# Longest first: a field whose length limit refuses one payload gets the next.
PAYLOADS = (
    '<script>alert(1)</script> [md](javascript:alert(4)) ![t](https://evil.example/t.png) '
    '<img src=x onerror=alert(2)> <a href="javascript:alert(5)">a</a> {: onclick="alert(3)" } '
    '[r][1]\n\n[1]: javascript:alert(6)',
    "[m](javascript:alert(4))<script>",
    "![t](https://e.x/t)<b onclick=x>",
    "[m](javascript:x)",
)


def with_payload(value, payload):
    """The field's value with payload in its text: a str replaced, a tuple given one more item
    (or, for a tuple of tuples, its last item's strings replaced)."""
    if isinstance(value, str):
        return payload
    if isinstance(value, tuple) and value and isinstance(value[-1], tuple):
        last = [payload if isinstance(v, str) else v for v in value[-1]]
        return [list(v) for v in value[:-1]] + [last]
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return list(value) + [payload]
    return None


def grid_text_fields():
    """(grid name, field name, default value) of every field holding text."""
    for grid_field in dataclasses.fields(grids_module.Grids):
        cls = grid_field.default_factory
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "str" in str(hints[f.name]):
                yield grid_field.name, f.name, getattr(cls(), f.name)


def grid_overrides() -> tuple[dict, list[str]]:
    """Overrides with a payload in every text field the grids accept; the fields refused."""
    overrides: dict[str, dict] = {}
    refused = []
    for grid, name, default in grid_text_fields():
        if isinstance(default, str) and "/" in default and (ROOT / "content" / default).is_file():
            continue  # a path to a data file: its texts get the payload instead
        errors = []
        # Rows of data (candidate tokens, model labels) repeat in every chart: the short payloads.
        nested = isinstance(default, tuple) and default and isinstance(default[-1], tuple)
        for payload in PAYLOADS[1:] if nested else PAYLOADS:
            value = with_payload(default, payload)
            try:
                grids_module.load_grids({grid: {name: value}})
            except grids_module.GridError as exc:
                errors.append(str(exc))
                continue
            overrides.setdefault(grid, {})[name] = value
            break
        else:
            assert all(f"grids.{grid}." in e for e in errors), errors  # refused, naming the grid
            refused.append(f"{grid}.{name}")
    return overrides, refused


def inject_data_files(checkout: Path) -> int:
    """A payload appended to every text of content/rag/*.json but the located passages."""
    structural = {"passage", "source", "name", "role", "about", "call", "parameters"}
    count = 0

    def walk(node, key=None):
        nonlocal count
        if key in structural:
            return node
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str):
            count += 1
            return node + " " + PAYLOADS[0]
        return node

    for path in sorted((checkout / "content" / "rag").glob("*.json")):
        path.write_text(json.dumps(walk(json.loads(path.read_text())), indent=1))
    return count


class _Audit(HTMLParser):
    """Collects what a page would run, load or link to."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self.inline_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"event attribute <{tag} {name}={value!r}>")
            if name in ("href", "src", "action", "formaction", "xlink:href") and value:
                if re.match(r"\s*(javascript|data|vbscript):", value, re.I):
                    self.found.append(f"<{tag} {name}={value!r}>")
                elif tag in ("img", "script", "iframe", "embed", "object", "source") and \
                        re.match(r"\s*(https?:)?//", value):
                    self.found.append(f"<{tag} {name}={value!r}> from another host")
        if tag == "script":
            src = dict(attrs).get("src")
            if not src:  # inline scripts the theme writes are allowed; none may carry the payload
                self.inline_script = True
            elif "alert" in src:
                self.found.append(f"<script src={src!r}>")

    def handle_data(self, data):
        if self.inline_script and "alert(" in data:
            self.found.append(f"inline script running {data[:60]!r}")

    def handle_endtag(self, tag):
        if tag == "script":
            self.inline_script = False


def test_no_payload_in_any_text_input_becomes_markup_on_any_page(tmp_path):
    overrides, refused = grid_overrides()
    checkout = copy_checkout(tmp_path / "repo")
    data_texts = inject_data_files(checkout)
    assert data_texts > 10
    cache = tmp_path / "cache"  # a copy: the payload results stay out of the shared cache
    if CACHE_DIR.exists():
        shutil.copytree(CACHE_DIR, cache)
    env = {"EXPLORABLES_CACHE_DIR": str(cache)}
    # A value some simulation refuses (say, a prompt of words outside the story grammar) fails
    # the build naming its field: that is safe too; the field is dropped and the rest rebuilt.
    for _ in range(10):
        text = (checkout / "mkdocs.yml").read_text().split("\n# injected\n")[0]
        (checkout / "mkdocs.yml").write_text(text + "\n# injected\n" + yaml.safe_dump({"extra": {"grids": overrides}}))
        result = mkdocs_build(checkout, env=env)
        if result.returncode == 0:
            break
        named = re.findall(r"grids\.(\w+)\.(\w+)", result.stderr)
        named = [(g, f) for g, f in named if f in overrides.get(g, {})]
        if not named:  # a late refusal that names no field (a validation gap): the value it quotes
            named = [(g, f) for g, fields in overrides.items() for f, v in fields.items()
                     if any(q in result.stderr for p in PAYLOADS if p in str(v)
                            for q in (p, repr(p)[1:-1]))][:1]
        assert named, result.stderr[-3000:]  # a failure must name or quote an injected field
        grid, name = named[-1]
        del overrides[grid][name]
        refused.append(f"{grid}.{name} (at build)")
    assert result.returncode == 0, result.stderr[-3000:]
    accepted = sorted(f"{g}.{f}" for g, fields in overrides.items() for f in fields)
    assert len(accepted) >= 5, (accepted, refused)
    site = checkout / "site"
    found = []
    pages = sorted(site.rglob("*.html"))
    for page in pages:
        audit = _Audit()
        audit.feed(page.read_text())
        found += [f"{page.relative_to(site)}: {f}" for f in audit.found]
    assert found == [], found[:10]
    # The payload reached the pages, as text.
    text = "".join(p.read_text() for p in pages)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "[md](javascript:alert(4))" in text
    assert "<script>alert" not in text
