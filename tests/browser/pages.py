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
    """Draw every chart now (the page draws them as they near the viewport) and wait for all."""
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


# Every text item a chart draws, read from its Vega scenegraph (so it works on canvas-drawn
# charts, which have no SVG text): arg is the figure's CSS selector.
CHART_TEXTS = """(figure) => {
  const el = document.querySelector(figure + ' .explorable-chart');
  const entry = el && window.explorables && window.explorables.charts.get(el);
  if (!entry) return [];
  const out = [];
  (function walk(node) {
    if (!node || !node.items) return;
    node.items.forEach((item) => {
      if (node.marktype === 'text' && item.text !== undefined) out.push([].concat(item.text).join(' '));
      walk(item);
    });
  })(entry.result.view.scenegraph().root);
  return out;
}"""


# The texts of the chart's own text marks (no axis, legend or title): arg is the figure's selector.
MARK_TEXTS = """(figure) => {
  const el = document.querySelector(figure + ' .explorable-chart');
  const entry = el && window.explorables && window.explorables.charts.get(el);
  if (!entry) return [];
  const out = [];
  (function walk(mark) {
    if (!mark || !mark.items || /^(axis|legend|title)/.test(mark.role || '')) return;
    mark.items.forEach((item) => {
      if (mark.marktype === 'text' && mark.role === 'mark') out.push([].concat(item.text).join(' '));
      (item.items || []).forEach(walk);
    });
  })(entry.result.view.scenegraph().root);
  return out;
}"""


def chart_texts(page, figure: str) -> list[str]:
    """Every text the chart in `figure` (a CSS selector) draws now, axis labels included."""
    return page.evaluate(CHART_TEXTS, figure)


# Every labelled mark item a chart draws, as Vega writes it into SVG (aria-roledescription and
# aria-label), read from its scenegraph so that canvas-drawn charts answer too: (figure, role)
# -> the labels of the items whose role description is `role` (every item's when role is null).
MARK_LABELS = """(figure, role) => {
  const el = document.querySelector(figure + ' .explorable-chart');
  const entry = el && window.explorables && window.explorables.charts.get(el);
  if (!entry) return [];
  const out = [];
  (function walk(mark) {
    if (!mark || !mark.items || /^(axis|legend|title)/.test(mark.role || '')) return;
    mark.items.forEach((item) => {
      if (item.description != null && item.aria !== false && mark.role === 'mark'
          && (role == null || (item.ariaRoleDescription || mark.marktype + ' mark') === role)) {
        out.push(item.description);
      }
      (item.items || []).forEach(walk);
    });
  })(entry.result.view.scenegraph().root);
  return out;
}"""


def mark_labels(page, figure: str, role: str | None = None) -> list[str]:
    """The labels of the marks the chart in `figure` draws now, as its SVG would carry them."""
    return page.evaluate(f"([f, r]) => ({MARK_LABELS})(f, r)", [figure, role])


# The viewport point at the middle of the first mark item whose label holds `text`: where a
# reader would point to see its tooltip ([figure, text] -> [x, y], or null).
MARK_POINT = """([figure, text]) => {
  const el = document.querySelector(figure + ' .explorable-chart');
  const view = window.explorables.charts.get(el).result.view;
  let found = null;
  (function walk(mark, ox, oy) {
    if (found || !mark || !mark.items) return;
    mark.items.forEach((item) => {
      if (found) return;
      if (mark.marktype === 'group') {
        (item.items || []).forEach((m) => walk(m, ox + (item.x || 0), oy + (item.y || 0)));
      } else if (mark.role === 'mark' && item.description && item.description.includes(text)) {
        const b = item.bounds;
        found = [ox + (b.x1 + b.x2) / 2, oy + (b.y1 + b.y2) / 2];
      }
    });
  })(view.scenegraph().root, 0, 0);
  if (!found) return null;
  const pad = view.padding();  // the scenegraph's root sits at the padding, then the origin
  const px = view.origin()[0] + (pad.left || 0), py = view.origin()[1] + (pad.top || 0);
  // A chart wider than the column scrolls in its own box: bring the point into it first.
  for (let box = el; box && box !== document.body; box = box.parentElement) {
    if (box.scrollWidth > box.clientWidth + 1) {
      box.scrollLeft = Math.max(0, px + found[0] - box.clientWidth / 2);
      break;
    }
  }
  const box = el.querySelector('canvas, svg').getBoundingClientRect();
  return [box.left + px + found[0], box.top + py + found[1]];
}"""


def hover_mark(page, figure: str, text: str) -> None:
    """Point the mouse at the first mark of the chart in `figure` whose label holds `text`."""
    page.evaluate("(f) => document.querySelector(f).scrollIntoView({block: 'center', behavior: 'instant'})", figure)
    point = page.evaluate(MARK_POINT, [figure, text])
    assert point, f"no mark labelled {text!r} in {figure}"
    for dx in (-1, 1, 0):  # the canvas's first mousemove only starts its hover tracking
        page.mouse.move(point[0] + dx, point[1])


# Charts are drawn on canvas, so their marks are not in the DOM. For tests, `__marks(selector)`
# answers a selector such as "#fig-x [aria-roledescription=bar]" (optionally with
# [aria-label*='…']) from the chart's scenegraph, with objects that read like the SVG elements
# Vega would have written: getAttribute('aria-label' | 'aria-roledescription') and textContent.
MARKS_SHIM = """
window.__marks = (selector) => {
  const m = selector.match(/^(.*?)\\s*\\[aria-roledescription=['"]?([^'"\\]]+)['"]?\\](?:\\[aria-label\\*=['"]([^'"]*)['"]\\])?\\s*$/);
  if (!m) throw new Error('__marks: cannot read ' + selector);
  const [, figure, role, contains] = m;
  const el = document.querySelector(figure.trim() + ' .explorable-chart');
  const entry = el && window.explorables && window.explorables.charts.get(el);
  if (!entry) return [];
  const out = [];
  (function walk(mark) {
    if (!mark || !mark.items || /^(axis|legend|title)/.test(mark.role || '')) return;
    mark.items.forEach((item) => {
      const itemRole = item.ariaRoleDescription || mark.marktype + ' mark';
      if (mark.role === 'mark' && item.description != null && item.aria !== false && itemRole === role
          && (contains === undefined || item.description.includes(contains))) {
        const text = item.text == null ? '' : [].concat(item.text).join(' ');
        out.push({ textContent: text, getAttribute: (name) => name === 'aria-label' ? item.description
                   : name === 'aria-roledescription' ? itemRole : null });
      }
      (item.items || []).forEach(walk);
    });
  })(entry.result.view.scenegraph().root);
  return out;
};
"""


def eval_marks(page, selector: str, fn: str):
    """page.eval_on_selector_all for chart marks: fn(the marks `__marks(selector)` finds)."""
    return page.evaluate(f"([s]) => ({fn})(__marks(s))", [selector])
