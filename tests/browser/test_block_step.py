"""The block chapter's step-through as a reader drives it, offline: the stage slider shows each
stage's precomputed numbers."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import move_slider, open_page
from tests.charts.specs import inline_data

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", [1, 7, 13, 15])
def test_stage_slider_shows_that_stages_numbers(browser, site, stage):
    spec = json.loads((site / "specs" / "block" / "step.vl.json").read_text())
    rows = next(r for r in inline_data(spec) if r and "value" in r[0])
    expected = [r["value"] for r in rows if r["stage"] == stage]
    visit = open_page(browser, site.as_uri(), "block.html")
    page = visit.page
    move_slider(page.locator("#fig-block-step input[type=range]"), stage)
    page.wait_for_function(
        f"""() => {{
            const bars = Array.from(__marks('#fig-block-step [aria-roledescription=bar]'));
            return bars.length === {len(expected)}
                && bars.every(e => (e.getAttribute('aria-label') || '').includes('stage: {stage};'));
        }}""")
    assert visit.errors == []
    page.context.close()
