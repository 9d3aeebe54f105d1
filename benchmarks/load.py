"""Page load in headless Chromium from file:// (issue 12): when the first chart is drawn, and how
long the main thread is blocked while the page loads.

Each page is opened fresh (no cache, no reader input, so no chart warms), once at a desktop
viewport and once at a phone's, and watched until it is quiet: the charts in the viewport drawn
(with no reader input, the page draws no other) and QUIET_MS without a long task. Per page:

- first contentful paint (the browser's own paint timing),
- first chart drawn: the first frame after a chart's canvas holds its marks (the page sets
  `data-rendered` on a chart once vega-embed has drawn it); none if no chart is in the
  viewport when the page opens,
- total blocking time, as Lighthouse counts it: the sum over long tasks (> 50 ms) after the
  first contentful paint of the part of each beyond 50 ms,
- charts drawn by then, of all on the page (the rest wait until a reader scrolls near them).

Not throttled: Lighthouse's mobile profile slows the CPU 4 times and the network to a slow 4G
line, so its numbers are larger; these are for comparing one build with the next on this
machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}
QUIET_MS = 2_000  # this long without a long task, and the page is done loading
TIMEOUT_MS = 30_000
REPEATS = 3  # fresh loads per page and viewport; the median is reported

PROBE = """
(() => {
  const load = window.__load = { longTasks: [], fcp: null, firstChart: null };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) load.longTasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.name === "first-contentful-paint") load.fcp = e.startTime;
  }).observe({ type: "paint", buffered: true });
  new MutationObserver((records, observer) => {
    if (!records.some((r) => r.target.hasAttribute && r.target.hasAttribute("data-rendered"))) return;
    observer.disconnect();
    requestAnimationFrame(() => { load.firstChart = performance.now(); });
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-rendered"] });
  // Resolves once the page has loaded, drawn the charts it started drawing (those near the
  // viewport) and gone quietMs without a long task; false after `timeout` ms.
  load.quiet = (quietMs, timeout) => new Promise((resolve) => {
    const began = performance.now();
    let drawn = false;
    const loaded = new Promise((r) => (document.readyState === "complete" ? r() : addEventListener("load", r)));
    loaded.then(() => (window.explorables ? window.explorables.ready : null)).then(() => { drawn = true; });
    const check = () => {
      const now = performance.now();
      const last = load.longTasks.reduce((t, [s, d]) => Math.max(t, s + d), 0);
      if (drawn && now - Math.max(last, load.firstChart || 0) >= quietMs) resolve(true);
      else if (now - began > timeout) resolve(false);
      else setTimeout(check, 250);
    };
    check();
  });
})();
"""


@dataclass
class PageLoad:
    page: str
    viewport: str
    fcp_ms: float
    first_chart_ms: float | None  # None if no chart is in the viewport at load
    blocking_ms: float  # total blocking time after the first contentful paint
    long_tasks: int
    drawn: int  # charts drawn once the page is quiet
    charts: int


def measure_site(browser, site: Path) -> list[PageLoad]:
    """Every page of a built site at every viewport, the median of REPEATS loads each."""
    out = []
    for path in sorted(site.glob("*.html")):
        if path.name == "404.html":
            continue
        for viewport in VIEWPORTS:
            loads = [measure_page(browser, site, path.name, viewport) for _ in range(REPEATS)]
            out.append(median_load(loads))
    return out


def median_load(loads: list[PageLoad]) -> PageLoad:
    """The load whose total blocking time is the median (its other numbers with it)."""
    return sorted(loads, key=lambda r: (r.blocking_ms, r.first_chart_ms or 0))[len(loads) // 2]


def measure_page(browser, site: Path, name: str, viewport: str) -> PageLoad:
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(PROBE)
    page = context.new_page()
    page.goto(f"{site.as_uri()}/{name}")
    if not page.evaluate("([q, t]) => window.__load.quiet(q, t)", [QUIET_MS, TIMEOUT_MS]):
        context.close()
        raise RuntimeError(f"{name} ({viewport}) was not quiet within {TIMEOUT_MS} ms")
    load = page.evaluate("""() => ({
        fcp: window.__load.fcp, firstChart: window.__load.firstChart, longTasks: window.__load.longTasks,
        drawn: document.querySelectorAll('.explorable-chart[data-rendered]').length,
        charts: document.querySelectorAll('.explorable-chart').length })""")
    context.close()
    fcp = load["fcp"] or 0.0
    return PageLoad(
        page=name, viewport=viewport, fcp_ms=fcp, first_chart_ms=load["firstChart"],
        blocking_ms=blocking_time(load["longTasks"], fcp),
        long_tasks=sum(1 for _, d in load["longTasks"] if d > 50), drawn=load["drawn"], charts=load["charts"])


def blocking_time(long_tasks: list[list[float]], after: float) -> float:
    """Lighthouse's total blocking time: over the tasks longer than 50 ms that end after `after`,
    the sum of what each lasts beyond 50 ms (a task that began before `after` counted from it).

    Example: blocking_time([[0, 120], [500, 40], [900, 80]], after=100) -> 0 + 0 + 30 = 30
    (the first task's part after 100 ms is 20 ms long, under 50)"""
    total = 0.0
    for start, duration in long_tasks:
        begin = max(start, after)
        length = start + duration - begin
        if duration > 50 and length > 50:
            total += length - 50
    return total
