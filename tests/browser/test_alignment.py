"""The alignment chapter in a browser, offline: every chart drawn, and the beta and place radios
redraw their charts with the precomputed numbers."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import eval_marks, open_page
from tests.charts.specs import inline_data

pytestmark = pytest.mark.slow

DPO = "#fig-alignment-dpo_curves"
NEXT = "#fig-alignment-next_tokens"


def spec_rows(site, name):
    return inline_data(json.loads((site / "specs" / "alignment" / f"{name}.vl.json").read_text()))[0]


def labels(page, selector):
    """Each mark's accessible label as {field: value}."""
    return [dict(part.split(": ", 1) for part in label.split("; ")) for label in eval_marks(page, 
        selector, "els => els.map(e => e.getAttribute('aria-label'))") if label]


def test_beta_radio_shows_that_runs_curves(browser, site):
    visit = open_page(browser, site.as_uri(), "alignment.html")
    page = visit.page
    rows = spec_rows(site, "dpo_curves")
    betas = sorted({r["beta"] for r in rows})
    assert {float(p["β"]) for p in labels(page, f"{DPO} [aria-roledescription=point]")} == {betas[0]}
    page.locator(f"{DPO} input[name=beta][value='{betas[-1]:g}']").check()  # as JavaScript writes the number
    page.wait_for_function(f"""() => Array.from(__marks('{DPO} [aria-roledescription=point]'))
        .every(e => (e.getAttribute('aria-label') || '').includes('β: {betas[-1]:g};'))""")
    shown = {(p["measure"], int(p["step"])): float(p["value"].replace("\u2212", "-"))  # d3 writes a real minus
             for p in labels(page, f"{DPO} [aria-roledescription=point]")}
    expected = {(r["measure"], r["step"]): r["value"] for r in rows if r["beta"] == betas[-1]}
    assert shown.keys() == expected.keys()
    for key, value in expected.items():
        assert shown[key] == pytest.approx(value, rel=1e-3, abs=1e-4)
    assert visit.errors == []
    page.context.close()


def test_place_radio_shows_that_places_probabilities(browser, site):
    visit = open_page(browser, site.as_uri(), "alignment.html")
    page = visit.page
    rows = spec_rows(site, "next_tokens")
    places = list(dict.fromkeys(r["place"] for r in rows))
    before = labels(page, f"{NEXT} [aria-roledescription=bar]")
    assert {b["place"] for b in before} == {places[0]}
    page.locator(f"{NEXT} input[name=place]").nth(1).check()
    page.wait_for_function(f"""() => {{
        const bars = Array.from(__marks('{NEXT} [aria-roledescription=bar]'));
        return bars.length > 0 && bars.every(e => (e.getAttribute('aria-label') || '').includes({json.dumps(places[1])}));
    }}""")
    shown = {(b["model"], b["token"]): float(b["probability"]) for b in labels(page, f"{NEXT} [aria-roledescription=bar]")}
    expected = {(r["stage"], r["token"]): r["probability"] for r in rows if r["place"] == places[1]}
    assert shown == pytest.approx(expected, abs=1e-4)
    assert visit.errors == []
    page.context.close()
