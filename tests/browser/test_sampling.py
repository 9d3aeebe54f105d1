"""The sampling chapter as a reader drives it: sliders by mouse and keyboard, exact values shown."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.pages import eval_marks, hover_mark, move_slider, open_page

pytestmark = pytest.mark.slow


def bar_labels(page, figure):
    return eval_marks(page, f"#{figure} [aria-roledescription=bar]", "els => els.map(e => e.getAttribute('aria-label'))")


def probabilities(labels):
    """token -> probability, read from the bars' accessible labels."""
    out = {}
    for label in labels:
        token = re.search(r"token: ([^;]+);", label).group(1)
        out[token] = float(re.search(r"probability: ([0-9.e+-]+)", label).group(1))
    return out


def spec_rows(site, name):
    spec = json.loads((site / "specs" / "sampling" / f"{name}.vl.json").read_text())
    return spec["vconcat"][0]["data"]["values"] if "vconcat" in spec else spec["layer"][0]["data"]["values"]


@pytest.mark.parametrize("value,expected_t", [("0.5", 0.5), ("0.01", 0.01), ("2", 2.0), ("0.06", 0.07)])  # 0.06 is off-grid: nearest in log space is 0.07
def test_temperature_slider_shows_the_precomputed_distribution(browser, site, value, expected_t):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    slider = page.locator("#fig-sampling-temperature input[type=range]")
    move_slider(slider, value)
    page.wait_for_function(
        f"""() => Array.from(__marks('#fig-sampling-temperature [aria-roledescription=bar]'))
              .some(e => (e.getAttribute('aria-label') || '').includes('temperature: {expected_t:.5f}'))""")
    shown = probabilities(bar_labels(page, "fig-sampling-temperature"))
    rows = [r for r in spec_rows(site, "temperature") if r["temperature"] == expected_t]
    assert len(shown) == len(rows) == 16
    for r in rows:
        assert shown[r["token"]] == pytest.approx(r["probability"], rel=1e-4, abs=1e-6)
    assert visit.errors == []
    page.context.close()


def test_keyboard_moves_the_temperature_slider(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    slider = page.locator("#fig-sampling-temperature input[type=range]")
    grid = json.loads(slider.get_attribute("data-grid"))  # one key press = one grid value
    slider.focus()
    for _ in range(grid.index(1.0) - grid.index(0.5)):
        page.keyboard.press("ArrowLeft")
    assert grid[int(slider.input_value())] == pytest.approx(0.5)
    assert page.locator("#fig-sampling-temperature .vega-bind-value").inner_text() == "0.5"
    page.wait_for_function("""() => Array.from(__marks('#fig-sampling-temperature [aria-roledescription=bar]'))
              .some(e => (e.getAttribute('aria-label') || '').includes('temperature: 0.50000'))""")
    page.context.close()


def test_top_k_slider_changes_which_tokens_survive(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    slider = page.locator("#fig-sampling-top_k input[type=range]")
    move_slider(slider, "3")
    page.wait_for_function("""() => Array.from(__marks('#fig-sampling-top_k [aria-roledescription=bar]'))
              .some(e => (e.getAttribute('aria-label') || '').includes('k: 3'))""")
    labels = bar_labels(page, "fig-sampling-top_k")
    kept = {re.search(r"token: ([^;]+);", l).group(1) for l in labels if "kept: true" in l}
    assert kept == {"\u2423mat", "\u2423floor", "\u2423couch"}
    page.context.close()


def test_sample_size_radio_switches_the_draws(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    page.locator("#fig-sampling-samples input[type=radio][value='10000']").check()
    page.wait_for_function("""() => Array.from(__marks('#fig-sampling-samples [aria-roledescription=bar]'))
              .some(e => (e.getAttribute('aria-label') || '').includes('N: 10,000') || (e.getAttribute('aria-label') || '').includes('N: 10000'))""")
    page.context.close()


def test_hover_shows_exact_values(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    hover_mark(page, "#fig-sampling-temperature", "probability: ")  # the first bar
    tooltip = page.locator("#vg-tooltip-element")
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert "probability" in text and "logit" in text
    assert re.search(r"0\.4673\d", text), text  # at least 4 significant digits
    page.context.close()
