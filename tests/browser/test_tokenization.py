"""The tokenization chapter as a reader drives it: escaped examples, the token inspector, the
text/ids toggle by keyboard, and the sliders, offline with no errors."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import CHART_TEXTS, move_slider, open_page

pytestmark = pytest.mark.slow

MARKUP = "<script>alert(1)</script> &amp; <b>bold</b>"


def panel(page, view, label):
    return page.locator(f"#{view} details").filter(has=page.locator("summary", has_text=label))


def shown_text(row):
    """A token row's text as the reader sees it, whitespace glyphs turned back into spaces."""
    return row.evaluate("el => Array.from(el.querySelectorAll(':scope > span'))"
                        ".map(s => s.textContent).join('').replaceAll('\u2423', ' ')")


@pytest.mark.parametrize("via", ["file", "http"])
def test_page_loads_offline_with_no_errors(browser, site, site_url, via):
    base = site.as_uri() if via == "file" else site_url
    visit = open_page(browser, base, "tokenization.html")
    assert visit.page.locator(".explorable-chart[data-rendered=error]").count() == 0
    assert visit.page.locator(".tokens").count() == 4  # three built with the page, the text box's
    assert visit.page.locator(".typed-text #tokens-typed").count() == 1
    assert visit.errors == []
    assert visit.external_requests() == []
    visit.page.context.close()


def test_markup_in_an_example_is_shown_as_text_and_never_runs(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    markup = panel(page, "tokens-example", "Markup shown as text")
    markup.locator("summary").click()
    row = markup.locator('.tokens-seq[data-encoding="cl100k_base"]')
    assert row.is_visible()
    assert shown_text(row) == MARKUP
    assert page.locator(".md-content b", has_text="bold").count() == 0  # no <b> element made
    page.wait_for_timeout(300)
    assert dialogs == [] and visit.errors == []
    page.context.close()


def test_text_ids_toggle_works_by_keyboard(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    view = page.locator("#tokens-example")
    first = view.locator("details[open] .tokens-seq > span").first
    page.locator("#tokens-example .tokens-mode input[value=text]").focus()
    page.keyboard.press("ArrowRight")  # radio group: moves to "ids" and selects it
    assert page.locator("#tokens-example .tokens-mode input[value=ids]").is_checked()
    page.wait_for_function("() => document.querySelector('#tokens-example').classList.contains('ids')")
    shown = first.evaluate("el => getComputedStyle(el, '::after').content")
    assert shown == json.dumps(first.get_attribute("data-i"))
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => !document.querySelector('#tokens-example').classList.contains('ids')")
    assert first.evaluate("el => getComputedStyle(el, '::after').content") in ("none", "normal")
    assert visit.errors == []
    page.context.close()


def test_focus_and_arrow_keys_describe_each_token(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    english = panel(page, "tokens-example", "English prose")
    row = english.locator('.tokens-seq[data-encoding="cl100k_base"] > span')
    row.first.focus()
    page.keyboard.press("ArrowRight")
    second = row.nth(1)
    assert page.evaluate("() => document.activeElement.dataset.i") == second.get_attribute("data-i")
    info = english.locator(".tokens-info")
    assert info.text_content() == (f"cl100k_base: position 1 of {row.count()}, id "
                                   f"{second.get_attribute('data-i')}, 6 bytes: 20 71 75 69 63 6b")
    emoji = panel(page, "tokens-example", "Emoji")
    emoji.locator("summary").click()
    partial = emoji.locator(".tokens-seq > span.partial-utf8").first
    partial.hover()
    text = emoji.locator(".tokens-info").text_content()
    assert partial.text_content() in text and "part of a character" in text
    page.context.close()


def test_bpe_slider_shows_the_merge_made_at_each_step(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    slider = page.locator("#fig-tokenization-bpe_steps input[type=range]")
    move_slider(slider, "1")
    spec = json.loads((site / "specs" / "tokenization" / "bpe_steps.vl.json").read_text())
    first = spec["datasets"]["merges"][1]
    expected = (f"Merge 1: {first['merged']}  (pair seen {first['count']} times); the text is now "
                f"{first['tokens in text']} tokens")
    page.wait_for_function(f"""(expected) => ({CHART_TEXTS})('#fig-tokenization-bpe_steps')
        .some(t => t === expected)""", arg=expected)
    assert visit.errors == []
    page.context.close()


def test_context_slider_quadruples_the_scores(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    slider = page.locator("#fig-tokenization-attention input[type=range]")
    slider.focus()
    for n in ("1,048,576", "4,194,304"):  # 1024^2, then one step right: 2048^2
        page.wait_for_function(f"""(n) => ({CHART_TEXTS})('#fig-tokenization-attention')
            .some(t => t === 'score entries (n\u00b2): ' + n)""", arg=n)
        page.keyboard.press("ArrowRight")
    assert visit.errors == []
    page.context.close()


def test_each_matrix_cell_names_the_queries_and_keys_it_stands_for(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    slider = page.locator("#fig-tokenization-attention input[type=range]")
    cells = """() => __scene('#fig-tokenization-attention')
        .filter(({ mark, item }) => __own(mark) && mark.marktype === 'rect' && item.datum && 'key' in item.datum)
        .map(({ item }) => [item.datum.query, item.datum.key, item.tooltip.cell, item.tooltip.score])"""
    for log2n in (3, 10):  # fewer tokens than cells a side, then a block of scores a cell
        move_slider(slider, str(log2n))
        page.wait_for_function(f"() => ({cells})().length === {min(2 ** log2n, 32) ** 2}")
        n = 2 ** log2n
        block = n // min(n, 32)
        for q, k, cell, score in page.evaluate(cells):
            assert cell == f"queries {q * block}\u2013{(q + 1) * block - 1}, keys {k * block}\u2013{(k + 1) * block - 1}"
            assert score == ("used" if k < q or (k == q and block == 1) else
                             "half used" if k == q else "masked (future token)")
    assert visit.errors == []
    page.context.close()
