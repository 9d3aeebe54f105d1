"""Opening a built page in Chromium while recording every request, console error and page error."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass
class Visit:
    page: object
    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def external_requests(self) -> list[str]:
        """Requests to anything but the site itself (file:// or the local test server)."""
        local = urlparse(self.base)
        return [u for u in self.requests
                if not (u.startswith("file://") or u.startswith("data:") or u.startswith("blob:")
                        or urlparse(u).netloc == local.netloc and local.scheme.startswith("http"))]


def open_page(browser, base: str, path: str, *, color_scheme: str = "light",
              viewport: dict | None = None) -> Visit:
    """Open base/path in a fresh context; wait until every chart on it has been drawn."""
    context = browser.new_context(color_scheme=color_scheme,
                                  viewport=viewport or {"width": 1280, "height": 900})
    context.add_init_script(MARKS_SHIM)
    page = context.new_page()
    visit = Visit(page=page, base=base)
    page.on("request", lambda r: visit.requests.append(r.url))
    page.on("console", lambda m: visit.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.errors.append(f"pageerror: {e}"))
    page.goto(f"{base}/{path}")
    wait_for_charts(page)
    return visit


def wait_for_charts(page, timeout: float = 20_000) -> None:
    """Draw every chart now (the page draws them as they come into view) and wait for all."""
    page.wait_for_function("() => window.explorables", timeout=timeout)
    page.evaluate("() => window.explorables.drawAll()")
    page.wait_for_function(
        """() => window.explorables && Array.from(document.querySelectorAll('.explorable-chart'))
                 .every(el => el.hasAttribute('data-rendered'))""", timeout=timeout)
    page.evaluate("() => window.explorables.ready")


def move_slider(slider, value) -> None:
    """Set a range input as a drag would: its value, then the input event Vega listens for.

    A slider over a grid (its positions are grid indices) is moved to the position of the grid
    value nearest `value`, in log space when the grid is positive (as the charts pick it)."""
    grid = slider.get_attribute("data-grid")
    if grid:
        values = json.loads(grid)
        scale = math.log if min(values) > 0 and float(value) > 0 else float
        value = min(range(len(values)), key=lambda i: abs(scale(values[i]) - scale(float(value))))
    slider.fill(str(value))
    slider.dispatch_event("input")


# Charts are drawn on canvas, so their marks are not in the DOM. Every page a test opens gets
# these readers of a chart's Vega scenegraph (installed before the page's scripts):
# - __scene(figure): [{mark, item, x, y}] for every item, x and y its group's offset;
# - __marks(selector): a selector such as "#fig-x [aria-roledescription=bar]" (optionally with
#   [aria-label*='…']) answered with objects that read like the SVG elements Vega would have
#   written: getAttribute('aria-label' | 'aria-roledescription') and textContent.
MARKS_SHIM = """
window.__scene = (figure) => {
  const el = document.querySelector(figure + ' .explorable-chart');
  const entry = el && window.explorables && window.explorables.charts.get(el);
  const out = [];
  (function walk(mark, x, y) {
    if (!mark || !mark.items) return;
    mark.items.forEach((item) => {
      out.push({ mark, item, x, y });
      (item.items || []).forEach((m) => walk(m, x + (item.x || 0), y + (item.y || 0)));
    });
  })(entry && entry.result.view.scenegraph().root, 0, 0);
  return out;
};
window.__own = (mark) => mark.role === 'mark' && mark.marktype !== 'group';  // not a guide
window.__marks = (selector) => {
  const m = selector.match(/^(.*?)\\s*\\[aria-roledescription=['"]?([^'"\\]]+)['"]?\\](?:\\[aria-label\\*=['"]([^'"]*)['"]\\])?\\s*$/);
  if (!m) throw new Error('__marks: cannot read ' + selector);
  const [, figure, role, contains] = m;
  return __scene(figure.trim())
    .filter(({ mark, item }) => __own(mark) && item.description != null && item.aria !== false
            && (item.ariaRoleDescription || mark.marktype + ' mark') === role
            && (contains === undefined || item.description.includes(contains)))
    .map(({ mark, item }) => ({
      textContent: item.text == null ? '' : [].concat(item.text).join(' '),
      getAttribute: (name) => name === 'aria-label' ? item.description
        : name === 'aria-roledescription' ? (item.ariaRoleDescription || mark.marktype + ' mark') : null }));
};
"""

# Every text a chart draws (axis labels and titles too), and the texts of its own text marks.
CHART_TEXTS = """(figure) => __scene(figure).filter(({ mark }) => mark.marktype === 'text')
  .map(({ item }) => [].concat(item.text).join(' '))"""
MARK_TEXTS = """(figure) => __scene(figure).filter(({ mark }) => mark.marktype === 'text' && __own(mark))
  .map(({ item }) => [].concat(item.text).join(' '))"""

# The viewport point at the middle of the first mark item whose label holds `text`: where a
# reader would point to see its tooltip ([figure, text] -> [x, y], or null).
MARK_POINT = """([figure, text]) => {
  const hit = __scene(figure).find(({ mark, item }) => __own(mark) && (item.description || '').includes(text));
  if (!hit) return null;
  const el = document.querySelector(figure + ' .explorable-chart');
  const view = window.explorables.charts.get(el).result.view;
  const pad = view.padding();  // the scenegraph's root sits at the padding, then the origin
  const x = view.origin()[0] + (pad.left || 0) + hit.x + (hit.item.bounds.x1 + hit.item.bounds.x2) / 2;
  const y = view.origin()[1] + (pad.top || 0) + hit.y + (hit.item.bounds.y1 + hit.item.bounds.y2) / 2;
  // A chart wider than the column scrolls in its own box: bring the point into it first.
  for (let box = el; box && box !== document.body; box = box.parentElement) {
    if (box.scrollWidth > box.clientWidth + 1) {
      box.scrollLeft = Math.max(0, x - box.clientWidth / 2);
      break;
    }
  }
  const box = el.querySelector('canvas, svg').getBoundingClientRect();
  return [box.left + x, box.top + y];
}"""


def hover_mark(page, figure: str, text: str) -> None:
    """Point the mouse at the first mark of the chart in `figure` whose label holds `text`."""
    page.evaluate("(f) => document.querySelector(f).scrollIntoView({block: 'center', behavior: 'instant'})", figure)
    point = page.evaluate(MARK_POINT, [figure, text])
    assert point, f"no mark labelled {text!r} in {figure}"
    for dx in (-1, 1, 0):  # the canvas's first mousemove only starts its hover tracking
        page.mouse.move(point[0] + dx, point[1])


def eval_marks(page, selector: str, fn: str):
    """page.eval_on_selector_all for chart marks: fn(the marks `__marks(selector)` finds)."""
    return page.evaluate(f"([s]) => ({fn})(__marks(s))", [selector])
