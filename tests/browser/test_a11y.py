"""Every reader: axe-core on every page in both palettes with every data table open, the
contrast of every text mark in every chart, a 390 px phone, the keyboard, and state in the URL."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.pages import open_page
from tests.charts.specs import inline_data
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = ROOT / ".cache" / "screenshots"


def all_pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.glob("*.html"))


def chart_pages(site):
    return [p for p in all_pages(site) if p != "404.html"]


def axe_violations(page) -> list[str]:
    """axe-core's verdict on the page as it stands: one line per failing rule."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document)).violations.map(v =>
        `${v.id} (${v.impact}, ${v.nodes.length}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`)""")
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_on_any_page_with_every_data_table_open(browser, site, scheme):
    assert AXE.is_file(), "run `npm ci`: axe-core is a dev dependency in package.json"
    report = {}
    for path in all_pages(site):
        visit = open_page(browser, site.as_uri(), path, color_scheme=scheme)
        visit.page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        # Data tables are built on their toggle event: axe must see every one of them.
        visit.page.wait_for_function("() => [...document.querySelectorAll('details.explorable-table')]"
                                     ".every(d => d.querySelector('table.explorable-data'))")
        # before axe runs: on file:// pages axe's own reads of the stylesheets log CORS errors
        assert visit.errors == [], (path, visit.errors)
        violations = axe_violations(visit.page)
        if violations:
            report[path] = violations
        visit.page.context.close()
    assert report == {}, report


# The contrast of every text item in every chart's scenegraph (axis labels, titles, text marks)
# against what is drawn behind it: the rect under its centre, else the page.
CONTRAST = """(el) => {
  const ctx = document.createElement('canvas').getContext('2d');
  const rgba = (c) => {
    ctx.fillStyle = '#01020300'; ctx.fillStyle = String(c);
    const s = ctx.fillStyle;
    if (s[0] === '#') return [1, 3, 5].map(i => parseInt(s.slice(i, i + 2), 16)).concat([1]);
    const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1];
  };
  const over = (top, bottom, alpha) => top.slice(0, 3).map((v, i) => v * alpha + bottom[i] * (1 - alpha));
  const lum = (c) => { const l = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                       return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const page = rgba(getComputedStyle(document.body).getPropertyValue('--md-default-bg-color').trim() || '#fff');
  const rects = [], texts = [];
  (function walk(node, ox, oy, op) {
    if (!node) return;
    (node.items || []).forEach(item => {
      const o = op * (item.opacity == null ? 1 : item.opacity);
      const type = node.marktype;
      if (type === 'rect' && item.fill && item.fill !== 'transparent') {
        rects.push({x1: ox + item.x, y1: oy + item.y, x2: ox + item.x + (item.width || 0), y2: oy + item.y + (item.height || 0),
                    c: rgba(item.fill), a: o * (item.fillOpacity == null ? 1 : item.fillOpacity)});
      }
      if (type === 'text' && item.text != null && String(item.text).trim() !== '' && o > 0) {
        const b = item.bounds;
        texts.push({text: String(item.text).slice(0, 40), cx: ox + (b.x1 + b.x2) / 2, cy: oy + (b.y1 + b.y2) / 2,
                    c: rgba(item.fill || '#000'), a: o * (item.fillOpacity == null ? 1 : item.fillOpacity),
                    size: item.fontSize || 11, order: rects.length});
      }
      if (type === 'group') {
        (item.items || []).forEach(child => walk(child, ox + (item.x || 0), oy + (item.y || 0), o));
      }
    });
  })(window.explorables.charts.get(el).result.view.scenegraph().root, 0, 0, 1);
  return texts.map(t => {
    let back = page;
    rects.slice(0, t.order).forEach(r => {
      if (t.cx >= r.x1 && t.cx <= r.x2 && t.cy >= r.y1 && t.cy <= r.y2) back = over(r.c, back, r.a);
    });
    const fore = over(t.c, back, t.c[3] * t.a);
    return {text: t.text, size: t.size, ratio: ratio(fore, back)};
  });
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_in_every_chart_meets_contrast(browser, site, scheme):
    failures = []
    for path in chart_pages(site):
        visit = open_page(browser, site.as_uri(), path, color_scheme=scheme)
        for el in visit.page.query_selector_all(".explorable-chart[data-rendered]"):
            for t in el.evaluate(CONTRAST):
                need = 3.0 if t["size"] >= 18 else 4.5
                if t["ratio"] < need:
                    failures.append((path, el.get_attribute("data-name"), t["text"], round(t["ratio"], 2)))
        visit.page.context.close()
    assert failures == [], failures[:40]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_no_page_scrolls_sideways_and_no_chart_is_shrunk(browser, site, scheme):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for path in all_pages(site):
        visit = open_page(browser, site.as_uri(), path, color_scheme=scheme, viewport=PHONE)
        page = visit.page
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            problems.append((path, "page width", width))
        scales = page.evaluate("""() => Array.from(document.querySelectorAll('.explorable-chart .marks'))
            .map(s => [s.closest('.explorable-chart').dataset.name, s.getBoundingClientRect().width / Number(s.getAttribute('width'))])""")
        problems += [(path, name, round(scale, 2)) for name, scale in scales if scale < 0.9]
        page.screenshot(path=str(SCREENSHOTS / f"{path[:-5]}-390-{scheme}.png"), full_page=True)
        visit.page.context.close()
    assert problems == [], problems


@pytest.fixture(params=["file", "http"])
def base(request, site):
    return site.as_uri() if request.param == "file" else request.getfixturevalue("site_url")


def heatmap_state(page):
    return page.evaluate("""() => { const v = window.explorables.charts
        .get(document.querySelector('#fig-attention-heatmap .explorable-chart')).result.view;
        return [v.signal('pick_layer'), v.signal('pick_head'), v.signal('view')]; }""")


def test_state_in_the_url_is_restored_kept_across_the_theme_and_updated(browser, base):
    visit = open_page(browser, base, "attention.html#heatmap.pick_layer=1&heatmap.pick_head=2")
    page = visit.page
    assert heatmap_state(page)[:2] == [1, 2]  # the page opens on layer 2, its induction head's
    assert page.locator("#fig-attention-heatmap input[name=pick_head][value='2']").is_checked()
    page.locator("#fig-attention-heatmap input[name=pick_head][value='3']").check()
    page.wait_for_function("() => location.hash.includes('heatmap.pick_head=3')")
    assert "heatmap.pick_layer=1" in page.evaluate("() => location.hash")
    status = page.locator("#fig-attention-heatmap .explorable-status").inner_text()
    assert "head 3" in status and "layer 1" in status
    page.locator("form[data-md-component=palette] label:visible").first.click()
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.explorable-chart'))
                               .every(el => el.getAttribute('data-rendered') === 'dark')""")
    page.evaluate("() => window.explorables.ready")
    assert heatmap_state(page)[:2] == [1, 3]
    assert "heatmap.pick_head=3" in page.evaluate("() => location.hash")
    assert visit.errors == []
    page.context.close()


def test_state_in_the_url_ignores_what_it_does_not_know(browser, site):
    visit = open_page(browser, site.as_uri(),
                      "attention.html#heatmap.pick_layer=9&heatmap.pick_head=abc&nope.x=1&heatmap.view=%3Cb%3E")
    page = visit.page
    default = open_page(browser, site.as_uri(), "attention.html")
    assert heatmap_state(page) == heatmap_state(default.page)
    assert visit.errors == []
    visit.page.context.close()
    default.page.context.close()


def test_grid_sliders_step_one_grid_value_per_key_press(browser, site):
    visit = open_page(browser, site.as_uri(), "pretraining.html#samples.step=0")
    page = visit.page
    slider = page.locator("#fig-pretraining-samples input[type=range]")
    grid = [int(v) for v in re.findall(r"\d+", slider.get_attribute("data-grid"))]
    assert int(slider.get_attribute("max")) == len(grid) - 1
    slider.focus()
    seen = []
    for _ in grid:
        seen.append(int(page.locator("#fig-pretraining-samples .vega-bind-value").inner_text()))
        page.keyboard.press("ArrowRight")
    assert seen == grid
    page.context.close()


def test_tabbing_into_an_open_data_table_keeps_the_layout(browser, site):
    visit = open_page(browser, site.as_uri(), "attention.html")
    page = visit.page
    page.locator("#fig-attention-heatmap details.explorable-table summary").click()
    # The table is built when opened, and charts further down are drawn as they come near the
    # viewport: let both settle, so the only thing that could move the layout is the Tab.
    page.wait_for_selector("#fig-attention-heatmap details.explorable-table table.explorable-data")
    page.evaluate("() => window.explorables.drawAll()")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.locator("#fig-attention-heatmap details.explorable-table summary").focus()
    page.keyboard.press("Tab")  # the button that shows every row, then the table
    assert page.evaluate("() => document.activeElement.matches('button.explorable-rows-toggle')")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.matches('table.explorable-data')")
    assert page.evaluate("() => document.documentElement.scrollHeight") == height
    page.context.close()


def test_the_data_table_shows_the_rows_drawn_now_and_every_row_on_request(browser, site):
    from tests.browser.pages import move_slider

    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    figure = "#fig-sampling-temperature"
    spec = json.loads((site / "specs" / "sampling" / "temperature.vl.json").read_text())
    every = sum(len(rows) for rows in inline_data(spec))

    def rows():
        return page.eval_on_selector_all(f"{figure} table.explorable-data tbody tr", "els => els.length")

    def table_text():
        return page.eval_on_selector_all(f"{figure} table.explorable-data tbody", "bs => bs.map(b => b.innerText)")

    page.locator(f"{figure} details.explorable-table summary").click()
    # The table is filled on the details' toggle event, which the browser fires in a task of its own.
    page.wait_for_function(f"() => document.querySelector('{figure} details.explorable-table').dataset.filled")
    drawn = page.evaluate(f"""() => {{
        const view = window.explorables.charts.get(document.querySelector('{figure} .explorable-chart')).result.view;
        let n = 0;
        (function walk(mark) {{
          if (!mark || !mark.items || /^(axis|legend|title)/.test(mark.role || '')) return;
          mark.items.forEach(i => mark.marktype === 'group' ? (i.items || []).forEach(walk)
                                                            : (n += mark.role === 'mark' && i.datum ? 1 : 0));
        }})(view.scenegraph().root);
        return n;
    }}""")
    assert 0 < rows() <= drawn < every
    before = table_text()
    move_slider(page.locator(f"{figure} input[type=range]"), "2")
    page.wait_for_function(f"""(before) => JSON.stringify([...document.querySelectorAll('{figure} table.explorable-data tbody')]
                                          .map(b => b.innerText)) !== JSON.stringify(before)""", arg=before)
    assert 0 < rows() < every  # the rows drawn at the new temperature
    page.locator(f"{figure} button.explorable-rows-toggle").click()
    assert rows() == every  # every row of the chart's data
    assert "Every row" in page.locator(f"{figure} .explorable-rows").inner_text()
    page.locator(f"{figure} button.explorable-rows-toggle").click()
    assert rows() < every
    assert not visit.errors, visit.errors
    page.context.close()


def test_actions_menu_is_named_and_closes_on_escape(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    summary = page.locator("#fig-sampling-temperature .vega-embed summary")
    assert "Download" in summary.get_attribute("aria-label")
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("#fig-sampling-temperature .vega-embed details").evaluate("d => d.open")
    page.keyboard.press("Escape")
    assert not page.locator("#fig-sampling-temperature .vega-embed details").evaluate("d => d.open")
    page.context.close()


def test_warming_moves_every_control_and_leaves_no_trace(browser, site):
    visit = open_page(browser, site.as_uri(), "alignment.html")
    page = visit.page
    # Count every signal change the warming makes, and read each chart's setting before it.
    before = page.evaluate("""() => {
        window.__moves = {};
        window.__events = {};  // events on the bound inputs, by chart and control
        for (const type of ['input', 'change']) document.addEventListener(type, (e) => {
          const chart = e.target.closest && e.target.closest('.explorable-chart');
          if (chart && e.target.name) {
            const key = chart.dataset.name + '.' + e.target.name;
            window.__events[key] = (window.__events[key] || 0) + 1;
          }
        }, true);
        const state = {};
        for (const [el, entry] of window.explorables.charts) for (const name of entry.controls.keys()) {
          const key = el.dataset.name + '.' + name;
          window.__moves[key] = 0;
          state[key] = entry.result.view.signal(name);
          entry.result.view.addSignalListener(name, () => { window.__moves[key] += 1; });
        }
        return state;
    }""")
    assert before  # the page has controls to warm
    page.mouse.move(5, 5)  # the reader's first move starts the warming
    assert page.evaluate("""() => Promise.race([window.explorables.warmed.then(() => true),
                                                new Promise((r) => setTimeout(() => r(false), 20000))])""")
    moves = page.evaluate("() => window.__moves")
    assert all(n >= 2 for n in moves.values()), moves  # there and back, at least once per control
    # ... through the inputs, as a reader's change goes (the binding and the page's listeners too)
    events = page.evaluate("() => window.__events")
    assert all(events.get(key, 0) >= 2 for key in moves), (events, list(moves))
    after = page.evaluate("""() => { const state = {};
        for (const [el, entry] of window.explorables.charts) for (const name of entry.controls.keys())
          state[el.dataset.name + '.' + name] = entry.result.view.signal(name);
        return state; }""")
    assert after == before
    assert page.evaluate("() => location.hash") == ""  # nothing written to the URL
    assert page.eval_on_selector_all(".explorable-status", "els => els.map(e => e.textContent)") == \
        [""] * page.locator(".explorable-status").count()  # nothing announced
    assert visit.errors == []
    page.context.close()


def test_the_live_region_speaks_after_a_change_and_is_never_drawn(browser, site):
    visit = open_page(browser, site.as_uri(), "alignment.html")
    page = visit.page
    figure = "#fig-alignment-dpo_curves"
    page.locator(f"{figure} input[name=beta]").nth(2).check()
    page.wait_for_function(f"() => document.querySelector('{figure} .explorable-status').textContent.includes('β')")
    box = page.locator(f"{figure} .explorable-status").bounding_box()
    assert box["width"] <= 1 and box["height"] <= 1
    clip = page.locator(f"{figure} .explorable-status").evaluate("e => getComputedStyle(e).clipPath")
    assert clip.startswith("inset(50%")
    page.context.close()
