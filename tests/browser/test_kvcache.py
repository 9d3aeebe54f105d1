"""The KV cache chapter as a reader drives it, offline: the step slider grows the cache row by
row, and the GPU-fit controls show the precomputed answers."""

from __future__ import annotations

import json
import re

import pytest

from tests.charts.specs import inline_data
from tests.browser.pages import eval_marks, move_slider, open_page

pytestmark = pytest.mark.slow


def spec_rows(site, name, field):
    """The inline dataset of a built chart whose rows have `field`."""
    spec = json.loads((site / "specs" / "kvcache" / f"{name}.vl.json").read_text())
    return next(rows for rows in inline_data(spec) if rows and field in rows[0])


def labels(page, figure, role):
    return eval_marks(page, f"#fig-kvcache-{figure} [aria-roledescription={role}]",
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
        f"""() => __marks('#fig-kvcache-growth [aria-roledescription="rect mark"]').length
                  === {len(expected) * (1 + 2 * sum(1 for r in rows if r['position'] == 0))}""")
    status = [l for l in labels(page, "growth", "'rect mark'") if "dimension" not in l]
    shown = sorted(int(re.search(r"position: (\d+)", l).group(1)) for l in status)
    assert shown == expected
    fresh = sorted(int(re.search(r"position: (\d+)", l).group(1)) for l in status if "row: new this step" in l)
    assert fresh == new and (len(new) > 1) == (step == 1)
    assert visit.errors == []
    page.context.close()


def test_fit_controls_show_the_precomputed_answers(browser, site):
    rows = spec_rows(site, "fit", "sequences")
    visit = open_page(browser, site.as_uri(), "kvcache.html")
    page = visit.page
    figure = page.locator("#fig-kvcache-fit")
    figure.locator("input[name=gpu][value='80']").check()
    figure.locator("input[name=precision][value=int8]").check()
    page.wait_for_function(
        """() => Array.from(__marks('#fig-kvcache-fit [aria-roledescription=bar]'))
              .some(e => (e.getAttribute('aria-label') || '').includes('precision: int8')
                         && (e.getAttribute('aria-label') || '').includes('GPU memory (GB): 80'))""")
    bars = labels(page, "fit", "bar")
    expected = {r["model"]: r["tokens"] for r in rows if (r["GB"], r["precision"]) == (80, "int8")}
    shown = {re.search(r"model: ([^;]+);", l).group(1):
             int(re.search(r"cache tokens that fit: ([\d,]+)", l).group(1).replace(",", "")) for l in bars}
    assert shown == expected and len(shown) == len({r["model"] for r in rows})
    # Llama 3.1 8B in int8 on 80 GB: (80e9 - 8,030,261,248) / 65,536 bytes per token
    assert shown["Llama 3.1 8B"] == (80 * 10 ** 9 - 8_030_261_248) // 65_536
    assert visit.errors == []
    page.context.close()
