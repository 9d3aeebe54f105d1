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


def expected_bytes(lines: list[dict], step: int) -> list[tuple[int, int, str]]:
    """Per byte of the paragraph, after `step` merges: (its index, the number of the token it is
    in, counting from 1, its shade), from the byte's join step alone: a token starts at every byte
    not yet joined to the one before it, and the tokens the merge at `step` made are the newest.
    """
    joined = [j for line in lines for j in line["_joined"]]
    number, out = 0, []
    for i, j in enumerate(joined):
        number += j < 0 or j > step
        out.append((i, number, j == step and step > 0))
    made = {n for _, n, new in out if new}
    return [(i, n, ("newest" if n % 2 else "newest, even") if n in made else "odd" if n % 2 else "even")
            for i, n, _ in out]


def test_bpe_boxes_are_the_tokens_after_each_merge(browser, site):
    """Every byte's box: the token it is in after the slider's merges and its shade, as the join
    steps the simulation recorded give them; as many tokens as the merge table says."""
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    spec = json.loads((site / "specs" / "tokenization" / "bpe_steps.vl.json").read_text())
    lines, merges = spec["datasets"]["paragraph"], spec["datasets"]["merges"]
    slider = page.locator("#fig-tokenization-bpe_steps input[type=range]")
    boxes = """() => __scene('#fig-tokenization-bpe_steps')
        .filter(({ mark, item }) => __own(mark) && mark.marktype === 'rect' && item.datum && '_token' in item.datum)
        .map(({ item }) => [item.datum._i, item.datum._token, item.datum._shade])"""
    n_bytes = sum(len(line["_joined"]) for line in lines)
    for step in (0, 1, 2, len(merges) // 2, len(merges) - 1):
        move_slider(slider, str(step))
        page.wait_for_function(f"() => window.explorables.charts.get(document.querySelector("
                               f"'#fig-tokenization-bpe_steps .explorable-chart')).result.view.signal('step') === {step}")
        page.evaluate("() => window.explorables.ready")
        drawn = sorted(tuple(b) for b in page.evaluate(boxes))
        assert len(drawn) == n_bytes
        assert drawn == expected_bytes(lines, step), step
        assert len({n for _, n, _ in drawn}) == merges[step]["tokens in text"], step
    assert visit.errors == []
    page.context.close()


def test_bpe_boxes_placed_once_are_where_a_plain_drawing_puts_them(browser, site):
    """The chart's boxes take their places once (usermeta static_position): after the
    slider has moved, each is where the same chart drawn afresh at that step, without the
    usermeta, puts it."""
    figure = "#fig-tokenization-bpe_steps"
    places = """(root) => { const out = [];
        (function walk(mark) { (mark.items || []).forEach((item) => {
            if (mark.marktype === 'rect' && item.datum && '_i' in item.datum)
                out.push([mark.name, item.datum._i, item.x, item.y, item.width, item.height].join(' '));
            (item.items || []).forEach(walk); }); })(root);
        return out.sort(); }"""
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    slider = page.locator(f"{figure} input[type=range]")
    for step in (1, 40):
        move_slider(slider, str(step))
        page.evaluate("() => window.explorables.ready")
        moved, plain = page.evaluate(f"""async () => {{
            const places = {places};
            const el = document.querySelector('{figure} .explorable-chart');
            const spec = JSON.parse(el.getAttribute('data-spec'));
            if (!spec.usermeta.explorables.static_position.length) throw new Error('nothing placed once');
            delete spec.usermeta;
            spec.params.find((p) => p.name === 'step').value = {step};
            const div = document.body.appendChild(document.createElement('div'));
            const fresh = await vegaEmbed(div, spec, {{ renderer: 'canvas', actions: false }});
            const out = [places(window.explorables.charts.get(el).result.view.scenegraph().root),
                         places(fresh.view.scenegraph().root)];
            fresh.finalize();
            div.remove();
            return out;
        }}""")
        assert len(moved) > 500 and moved == plain, step
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
