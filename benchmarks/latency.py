"""Input-to-repaint latency of every chart control, in headless Chromium from file:// (issue 12).

Every bound control of every chart on every page is driven as a reader would: a slider with
ArrowRight/ArrowLeft through several positions and back, each radio and each select option
chosen in turn and then the first setting again, a checkbox toggled twice. For each change the
page itself times the work it caused, from the capture-phase `input`/`change` event to the end
of the first frame drawn after it:

    work = (event -> the chart's view.runAsync() settled: handlers, dataflow, scenegraph, SVG)
         + (that frame's rAF -> a task posted from it: style, layout and paint of the new marks)

The wait for the next vsync between the two is left out: it is idle time, not work, and would
put every change over a 16 ms frame however cheap it is. A PerformanceObserver counts the long
tasks (> 50 ms) that overlap a change.

Changes are timed as a reader makes them: after the page has warmed its charts
(`explorables.warmed`: after the reader's first move, each control moved and back a few times in
idle time, so that the engine has compiled the update path), and with each chart scrolled into
view and its repaint landed before the first change. The harness waits on a promise in the page
rather than polling it, which would add tasks of its own to the frames it times. What is not
measured: hover and tooltips, page load, and the tokenization page's text box
(`typed_text_rows` in bench.py times that).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

FRAME_BUDGET_MS = 16.0  # one 60 Hz frame
LONG_TASK_BUDGET = 0
SLIDER_PRESSES = 5  # key presses toward one end of a slider, then as many back
CHANGE_TIMEOUT_MS = 10_000

# Installed before any page script: the long-task observer and the per-change timer.
PROBE = """
(() => {
  const lat = window.__latency = { changes: [], longTasks: [], current: null, waiting: [] };
  // Resolves once more than `n` changes are timed (false after `timeout` ms): the harness waits
  // on this promise instead of polling the page, which would put tasks of its own on the main
  // thread in the middle of the changes it times.
  lat.next = (n, timeout) => new Promise((resolve) => {
    if (lat.changes.length > n && !lat.current) return resolve(true);
    const waiter = { n, resolve };
    lat.waiting.push(waiter);
    setTimeout(() => { lat.waiting = lat.waiting.filter((w) => w !== waiter); resolve(false); }, timeout);
  });
  const done = () => {
    const ready = lat.waiting.filter((w) => lat.changes.length > w.n);
    lat.waiting = lat.waiting.filter((w) => lat.changes.length <= w.n);
    ready.forEach((w) => w.resolve(true));
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) lat.longTasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
  const afterFrame = () => new Promise((resolve) => requestAnimationFrame(() => {
    const frame = performance.now();
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve([frame, performance.now()]);
    channel.port2.postMessage(null);
  }));
  const start = (event) => {
    const chart = event.target.closest && event.target.closest(".explorable-chart");
    // vega listens for `input` on sliders, `change` on radios, selects and checkboxes.
    if (event.type !== (event.target.type === "range" ? "input" : "change")) return;
    if (!chart || lat.current || !window.explorables) return;
    const entry = window.explorables.charts.get(chart);
    if (!entry) return;
    const t0 = performance.now();
    lat.current = t0;
    // Bubble phase on window: after vega's own listener on the input has run.
    window.addEventListener(event.type, async () => {
      await entry.result.view.runAsync();
      const settled = performance.now();
      const [frame, painted] = await afterFrame();
      lat.changes.push({ t0, settled, frame, painted, work: settled - t0 + painted - frame });
      lat.current = null;
      done();
    }, { once: true });
  };
  document.addEventListener("input", start, true);
  document.addEventListener("change", start, true);
})();
"""


# Two frames and a task after them: whatever a scroll or a focus had to repaint is painted.
SETTLE = """
() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(resolve, 0))))
"""


@dataclass
class PageLatency:
    page: str
    controls: int = 0
    work_ms: list[float] = field(default_factory=list)  # one per change
    long_tasks: int = 0  # > 50 ms, overlapping a change
    missed: list[str] = field(default_factory=list)  # actions that changed nothing

    @property
    def changes(self) -> int:
        return len(self.work_ms)

    def percentile(self, q: float) -> float:
        """The q-th percentile of the work per change (inclusive method; the max at q = 100)."""
        if len(self.work_ms) == 1:
            return self.work_ms[0]
        return statistics.quantiles(self.work_ms, n=100, method="inclusive")[round(q) - 1] if q < 100 \
            else max(self.work_ms)


def measure_site(browser, site: Path) -> list[PageLatency]:
    """Every page of a built site that has at least one chart control, in file order."""
    results = [measure_page(browser, site, p.name) for p in sorted(site.glob("*.html"))]
    return [r for r in results if r.controls]


def measure_page(browser, site: Path, name: str) -> PageLatency:
    from tests.browser.pages import wait_for_charts

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(PROBE)
    page = context.new_page()
    page.goto(f"{site.as_uri()}/{name}")
    result = PageLatency(page=name)
    if page.locator(".explorable-chart").count():
        wait_for_charts(page)
        page.mouse.move(1, 1)  # a reader's first move: the page starts warming its charts
        page.evaluate("() => window.explorables.warmed")
        for control in page.locator(".explorable-chart .vega-bind").all():
            if _drive(page, control, result):
                result.controls += 1
        changes = page.evaluate("() => window.__latency.changes")
        tasks = page.evaluate("() => window.__latency.longTasks")
        result.work_ms = [c["work"] for c in changes]
        result.long_tasks = sum(any(start < c["painted"] and start + duration > c["t0"] for c in changes)
                                for start, duration in tasks)
    context.close()
    return result


# ----------------------------------------------------------------------------------------------
# Driving one control


def _drive(page, control, result: PageLatency) -> bool:
    """Drive one `.vega-bind` control through its settings; False if it is none we know."""
    slider = control.locator("input[type=range]")
    radios = control.locator("input[type=radio]")
    select = control.locator("select")
    checkbox = control.locator("input[type=checkbox]")
    # A reader scrolls to a chart before using it: let the scroll's own repaint land first, so
    # that it is not timed as part of the first change.
    control.scroll_into_view_if_needed()
    page.evaluate(SETTLE)
    if slider.count():
        slider.focus()
        low, high, step = (float(slider.get_attribute(a) or d) for a, d in (("min", 0), ("max", 100), ("step", 1)))
        at = float(slider.input_value())
        # toward the farther end, so that every press moves it
        key, back = ("ArrowRight", "ArrowLeft") if high - at >= at - low else ("ArrowLeft", "ArrowRight")
        presses = min(SLIDER_PRESSES, round(max(high - at, at - low) / step))
        for k in [key] * presses + [back] * presses:
            _change(page, result, f"{_name(control)} {k}", lambda: page.keyboard.press(k))
    elif radios.count():
        options = list(range(radios.count()))
        first = radios.evaluate_all("els => els.findIndex(e => e.checked)")
        for i in options[first + 1:] + options[:first] + [first] if first >= 0 else options:
            _change(page, result, f"{_name(control)} option {i}", radios.nth(i).check)
    elif select.count():
        values = select.locator("option").evaluate_all("els => els.map(e => e.value)")
        first = values.index(select.input_value())
        for v in values[first + 1:] + values[:first] + [values[first]]:
            _change(page, result, f"{_name(control)}={v}", lambda v=v: select.select_option(v))
    elif checkbox.count():
        for _ in range(2):
            _change(page, result, f"{_name(control)} toggle", checkbox.click)
    else:
        return False
    return True


def _change(page, result: PageLatency, what: str, act) -> None:
    """Do one action and wait until the page has timed the change it caused."""
    before = page.evaluate("() => window.__latency.changes.length")
    act()
    if not page.evaluate("([n, timeout]) => window.__latency.next(n, timeout)", [before, CHANGE_TIMEOUT_MS]):
        page.evaluate("() => { window.__latency.current = null; }")  # the action changed nothing
        result.missed.append(what)


def _name(control) -> str:
    label = control.locator(".vega-bind-name")
    return (label.first.inner_text() if label.count() else "?").strip()
