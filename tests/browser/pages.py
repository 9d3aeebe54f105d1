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
