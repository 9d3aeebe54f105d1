"""The attention chapter as a reader drives it, offline: the layer, head and view radios redraw
the heatmap with the precomputed weights, scores and unmasked weights."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import eval_marks, open_page
from tests.charts.specs import inline_data, params

pytestmark = pytest.mark.slow

HEATMAP = "#fig-attention-heatmap"


def heatmap_rows(site):
    spec = json.loads((site / "specs" / "attention" / "heatmap.vl.json").read_text())
    (rows,) = inline_data(spec)
    return rows


def shown_cells(page):
    """{(query, key): value shown}, read from the heatmap cells' accessible labels."""
    labels = eval_marks(page, f"{HEATMAP} [aria-roledescription='rect mark']",
                                       "els => els.map(e => e.getAttribute('aria-label'))")
    cells = {}
    for label in labels:
        fields = dict(part.split(": ", 1) for part in label.replace("\u2212", "-").split("; ")
                      if part.startswith(("shown", "query position", "key position")))
        cells[int(fields["query position"]), int(fields["key position"])] = float(fields["shown"])
    return cells


def matches(cells, expected):
    return set(cells) == set(expected) and all(
        cells[c] == pytest.approx(v, rel=1e-3, abs=1e-6) for c, v in expected.items())


def redrawn(page, expected, timeout_ms=10_000):
    """The heatmap's cells once they show the expected values (or as they are at the timeout)."""
    for _ in range(timeout_ms // 100):
        cells = shown_cells(page)
        if matches(cells, expected):
            break
        page.wait_for_timeout(100)
    return cells


@pytest.mark.parametrize("layer,head,view,field", [
    (1, 1, "weights (causal mask)", "weight"),
    (2, 3, "weights without the mask", "weight without mask"),
    (2, 4, "scores before softmax", "score"),
])
def test_radios_show_the_chosen_heads_precomputed_values(browser, site, layer, head, view, field):
    visit = open_page(browser, site.as_uri(), "attention.html")
    page = visit.page
    before = shown_cells(page)
    page.locator(f"{HEATMAP} input[name=pick_layer][value='{layer}']").check()
    page.locator(f"{HEATMAP} input[name=pick_head][value='{head}']").check()
    page.locator(f"{HEATMAP} input[name=view][value='{view}']").check()
    rows = [r for r in heatmap_rows(site) if (r["layer"], r["head"]) == (layer, head)]
    expected = {(r["query"], k): v for r in rows for k, v in zip(r["key"], r[field])}
    spec = json.loads((site / "specs" / "attention" / "heatmap.vl.json").read_text())
    opening = (params(spec)["pick_layer"]["value"], params(spec)["pick_head"]["value"], "weight")
    if (layer, head, field) != opening:  # not what the page opens with: the radios changed it
        assert not matches(before, expected)
    cells = redrawn(page, expected)
    assert set(cells) == set(expected)
    for cell, value in expected.items():
        assert cells[cell] == pytest.approx(value, rel=1e-3, abs=1e-6), cell
    if field == "weight":
        assert all(v == 0 for (q, k), v in cells.items() if k > q)
    assert visit.errors == []
    page.context.close()
