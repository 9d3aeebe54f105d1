"""Every page in a real Chromium, from disk and from a local server: no errors, no requests to
any other host, every chart drawn, dark mode followed, search working offline."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import move_slider, open_page
from tests.charts.specs import nodes

pytestmark = pytest.mark.slow


def html_pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.glob("*.html") if p.name != "404.html")


@pytest.fixture(params=["file", "http"])
def base(request, site):
    if request.param == "file":
        return site.as_uri()
    return request.getfixturevalue("site_url")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_loads_cleanly_and_draws_every_chart(browser, site, base, scheme):
    for path in html_pages(site):
        visit = open_page(browser, base, path, color_scheme=scheme)
        page = visit.page
        assert visit.errors == [], (path, visit.errors)
        assert visit.external_requests() == [], (path, visit.external_requests())
        states = page.eval_on_selector_all(".explorable-chart", "els => els.map(e => e.getAttribute('data-rendered'))")
        assert all(s == scheme for s in states), (path, states)
        drawn = page.eval_on_selector_all(".explorable-chart", "els => els.map(e => !!e.querySelector('canvas.marks, svg.marks'))")
        assert all(drawn), path
        page.context.close()


def test_charts_follow_dark_mode_and_keep_their_controls(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    slider = page.locator("#fig-sampling-temperature input[type=range]")
    move_slider(slider, "0.3")
    page.locator("form[data-md-component=palette] label:visible").first.click()
    page.wait_for_function("() => document.body.getAttribute('data-md-color-scheme') === 'slate'")
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.explorable-chart'))
                               .every(el => el.getAttribute('data-rendered') === 'dark')""")
    page.evaluate("() => window.explorables.ready")
    signal = page.evaluate("""() => window.explorables.charts
        .get(document.querySelector('#fig-sampling-temperature .explorable-chart')).result.view.signal('T')""")
    grid = json.loads(slider.get_attribute("data-grid"))  # the slider steps through grid indices
    assert grid[signal] == pytest.approx(0.3)
    assert slider.input_value() == str(signal)
    assert page.locator("#fig-sampling-temperature .vega-bind-value").inner_text() == "0.3"
    # the dark theme really is applied: axis labels are light on the dark page
    fill = page.evaluate("""() => {
        const view = window.explorables.charts.get(document.querySelector('#fig-sampling-temperature .explorable-chart')).result.view;
        let fill = null;
        (function walk(mark) {
          if (fill || !mark || !mark.items) return;
          if (mark.role === 'axis-label' && mark.items.length) fill = mark.items[0].fill;
          mark.items.forEach((item) => (item.items || []).forEach(walk));
        })(view.scenegraph().root);
        return fill;
    }""")
    assert fill and fill.lower() not in ("#000", "#000000", "black", "#888")
    assert visit.errors == []
    page.context.close()


def test_dark_preference_renders_dark_from_the_start(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html", color_scheme="dark")
    states = visit.page.eval_on_selector_all(".explorable-chart", "els => els.map(e => e.getAttribute('data-rendered'))")
    assert set(states) == {"dark"}
    visit.page.context.close()


@pytest.mark.parametrize("over", ["file", "http"])
def test_search_works_from_disk_and_over_http(browser, site, site_url, over):
    # From disk the search worker runs in an iframe (the shim); over HTTP it is a real worker,
    # and the shim is never loaded.
    visit = open_page(browser, site.as_uri() if over == "file" else site_url, "index.html")
    page = visit.page
    page.locator("input[data-md-component=search-query]").click()
    page.keyboard.type("nucleus")
    page.wait_for_selector(".md-search-result__item", timeout=15_000)
    titles = page.locator(".md-search-result__item").all_inner_texts()
    assert any("sampling" in t.lower() or "top-p" in t.lower() for t in titles), titles
    assert visit.errors == [] and visit.external_requests() == []
    assert any(u.endswith("iframe-worker/shim.js") for u in visit.requests) == (over == "file")
    page.context.close()


def test_every_chart_has_a_data_table_and_a_spec_download(browser, site):
    for path in html_pages(site):
        visit = open_page(browser, site.as_uri(), path)
        figures = visit.page.locator("figure.explorable")
        for i in range(figures.count()):
            fig = figures.nth(i)
            details = fig.locator("details.explorable-table")
            assert details.locator("table").count() == 0  # built only when a reader opens it
            details.locator("summary").click()
            spec = json.loads(fig.locator(".explorable-chart").get_attribute("data-spec"))
            tables = details.locator("table")
            tables.first.wait_for(state="attached")  # built on the details' toggle event
            assert tables.count() >= 1  # the rows drawn now
            details.locator("button.explorable-rows-toggle").click()  # every row
            # the first table holds the first inline dataset, row for row
            first = next(n["data"]["values"] for n in nodes(spec)
                         if isinstance(n.get("data"), dict) and isinstance(n["data"].get("values"), list))
            assert tables.first.locator("tbody tr").count() == len(first)
            href = fig.locator("a.explorable-download").get_attribute("href")
            assert (site / href).is_file(), href
        visit.page.context.close()


def test_formulas_reach_every_chapter_as_mathml(browser, site):
    from tests.conftest import ROOT

    for source in sorted((ROOT / "content").glob("*.md")):
        if "$" not in source.read_text():
            continue
        visit = open_page(browser, site.as_uri(), source.with_suffix(".html").name)
        assert visit.page.locator(".md-content math").count() > 0, source.name
        visit.page.context.close()


CHART_PLACES = """() => Array.from(document.querySelectorAll('.explorable-chart')).map((el) => {
    const box = el.getBoundingClientRect();
    return {name: el.dataset.name, top: box.top, bottom: box.bottom, drawn: el.hasAttribute('data-rendered')};
})"""


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 900}])
def test_a_chart_is_drawn_when_in_view_and_one_near_it_once_the_reader_reads_on(browser, site, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{site.as_uri()}/sampling.html")
    page.wait_for_function("() => window.explorables")
    page.wait_for_timeout(1_000)  # the observer's first report, and any drawing it starts
    page.evaluate("() => window.explorables.ready")
    height = viewport["height"]
    places = page.evaluate(CHART_PLACES)
    for p in places:  # untouched: exactly the charts in the viewport are drawn
        assert p["drawn"] == (p["bottom"] > 0 and p["top"] < height), p
    if not any(p["drawn"] for p in places):
        assert not any(u.endswith("vega-bundle.js") for u in requests), "the bundle loaded for no chart"
    page.mouse.move(10, 10)  # the reader engages, without scrolling
    page.wait_for_timeout(1_000)
    page.evaluate("() => window.explorables.ready")
    for p in page.evaluate(CHART_PLACES):  # now every chart within 600 px of the viewport
        assert p["drawn"] == (p["bottom"] > -600 and p["top"] < height + 600), p
    assert any(u.endswith("vega-bundle.js") for u in requests)
    context.close()
