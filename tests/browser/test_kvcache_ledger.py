"""The KV cache chapter's roofline as a reader drives it, offline: the batch control moves every
model's decode step to its precomputed point."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.pages import eval_marks, open_page
from tests.charts.specs import inline_data

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("batch", [1, 64])
def test_batch_control_shows_each_models_point(browser, site, batch):
    spec = json.loads((site / "specs" / "kvcache" / "roofline.vl.json").read_text())
    rows = next(r for r in inline_data(spec) if r and "tokens/s" in r[0])
    expected = {r["model"]: r["FLOP per byte"] for r in rows if r["batch"] == batch}
    visit = open_page(browser, site.as_uri(), "kvcache.html")
    page = visit.page
    page.locator(f"#fig-kvcache-roofline input[name=batch][value='{batch}']").check()
    page.wait_for_function(
        f"""() => Array.from(__marks('#fig-kvcache-roofline [aria-roledescription=point]'))
              .some(e => (e.getAttribute('aria-label') || '').includes('batch: {batch};'))""")
    points = eval_marks(page, "#fig-kvcache-roofline [aria-roledescription=point]",
                                       "els => els.map(e => e.getAttribute('aria-label') || '')")
    chosen = [p for p in points if f"batch: {batch};" in p and "FLOP per byte" in p]
    shown = {re.search(r"model: ([^;]+);", p).group(1): float(re.search(r"FLOP per byte: ([\d.,]+)", p).group(1).replace(",", ""))
             for p in chosen}
    assert set(shown) == set(expected)
    for model, value in shown.items():
        assert value == pytest.approx(expected[model], rel=1e-3)
    assert visit.errors == []
    page.context.close()
