"""The KV cache chapter as a reader drives it, offline: the step slider grows the cache row by
row, and the memory controls show the precomputed sizes."""

from __future__ import annotations

import json
import re

import pytest

from tests.charts.specs import inline_data
from tests.browser.pages import move_slider, open_page

pytestmark = pytest.mark.slow


def spec_rows(site, name, field):
    """The inline dataset of a built chart whose rows have `field`."""
    spec = json.loads((site / "specs" / "kvcache" / f"{name}.vl.json").read_text())
    return next(rows for rows in inline_data(spec) if rows and field in rows[0])


def labels(page, figure, role):
    return page.eval_on_selector_all(f"#fig-kvcache-{figure} [aria-roledescription={role}]",
                                     "els => els.map(e => e.getAttribute('aria-label') || '')")


@pytest.mark.parametrize("step", [1, 4, 10])
def test_step_slider_shows_the_rows_reused_and_the_one_written(browser, site, step):
    rows = spec_rows(site, "growth", "key")
    written = {r["position"]: r["written at step"] for r in rows}
    visit = open_page(browser, site.as_uri(), "kvcache.html")
    page = visit.page
    slider = page.locator("#fig-kvcache-growth input[type=range]")
    move_slider(slider, step)
    expected = sorted(p for p, w in written.items() if w <= step)
    new = sorted(p for p, w in written.items() if w == step)
    page.wait_for_function(
        f"""() => document.querySelectorAll('#fig-kvcache-growth [aria-roledescription="rect mark"]').length
                  === {len(expected) * (1 + 2 * sum(1 for r in rows if r['position'] == 0))}""")
    status = [l for l in labels(page, "growth", "'rect mark'") if "dimension" not in l]
    shown = sorted(int(re.search(r"position: (\d+)", l).group(1)) for l in status)
    assert shown == expected
    fresh = sorted(int(re.search(r"position: (\d+)", l).group(1)) for l in status if "row: new this step" in l)
    assert fresh == new and (len(new) > 1) == (step == 1)
    assert visit.errors == []
    page.context.close()


def test_memory_controls_show_the_precomputed_sizes(browser, site):
    rows = spec_rows(site, "memory", "bytes")
    visit = open_page(browser, site.as_uri(), "kvcache.html")
    page = visit.page
    figure = page.locator("#fig-kvcache-memory")
    figure.locator("input[name=precision][value=int8]").check()
    figure.locator("input[name=batch][value='8']").check()
    figure.locator("select").select_option("16384")
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('#fig-kvcache-memory [aria-roledescription=bar]'))
              .some(e => (e.getAttribute('aria-label') || '').includes('precision: int8')
                         && (e.getAttribute('aria-label') || '').includes('batch: 8')
                         && (e.getAttribute('aria-label') || '').includes('16,384'))""")
    bars = labels(page, "memory", "bar")
    expected = {r["model"]: r["bytes"] for r in rows
                if (r["precision"], r["batch"], r["sequence length"]) == ("int8", 8, 16384)}
    shown = {re.search(r"model: ([^;]+);", l).group(1): int(re.search(r"bytes: ([\d,]+)", l).group(1).replace(",", ""))
             for l in bars}
    assert shown == expected and len(shown) == 4
    assert shown["GPT-2 small"] == 2 * 12 * 12 * 16384 * 64 * 1 * 8
    assert visit.errors == []
    page.context.close()
