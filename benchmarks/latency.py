"""Input-to-repaint latency of every chart control, in headless Chromium from file:// (issue 12).

Every bound control of every chart on every page is driven as a reader would: a slider with
ArrowRight/ArrowLeft through several positions and back, each radio and each select option
chosen in turn and then the first setting again, a checkbox toggled twice. A change's span runs
from the capture-phase `input`/`change` event to the end of the first frame drawn after it (a
task posted from that frame's rAF), and its work, the number held to the budget, is:

    work = the CPU time of the renderer's main thread in that span, read from the browser's
           trace (each task's thread time, `tdur`): handlers, Vega's dataflow and canvas
           drawing, style, layout, paint and the frame's commit (and the tracing's own cost,
           so that the number errs high)

not the span's wall-clock length. On a machine of 2 cores the browser's other threads and
processes (compositor, raster, GPU, the harness itself) take turns on the cores with the page's
main thread, and a frame's commit can wait for the compositor to finish drawing the one before:
that time is spent waiting, not working, and it is what made a change's wall-clock span jump
between 4 and 20 ms with no difference in the work. The page's own wall-clock timing is
reported beside it (`span_ms`: the span less the wait for the next vsync between the dataflow
settling and the frame). A PerformanceObserver counts the long tasks (> 50 ms) that overlap a
change.

Every control of a page is driven again, round after round, until at least MIN_CHANGES changes
are timed, so that the 95th percentile is one of many samples rather than the maximum of ten.
Changes are timed as a reader makes them: after the page has warmed its charts
(`explorables.warmed`: after the reader's first move, each control moved and back a few times in
idle time, so that the engine has compiled the update path), and with each chart scrolled into
view and its repaint landed before the first change. The harness waits on a promise in the page
rather than polling it, which would add tasks of its own to the frames it times. What is not
measured here: hover and tooltips, page load (benchmarks/load.py) and the tokenization page's
text box (`typed_text_rows` in bench.py).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

FRAME_BUDGET_MS = 16.0  # one 60 Hz frame
LONG_TASK_BUDGET = 0
SLIDER_PRESSES = 5  # key presses toward one end of a slider, then as many back
# Changes timed per page at least: every control is driven again, round after round, until there
# are this many. A 95th percentile of the 10 changes a one-slider page gives in one round is its
# maximum, a single sample; of 40 it is the second highest.
MIN_CHANGES = 40
MAX_ROUNDS = 6
CHANGE_TIMEOUT_MS = 10_000

# Each change's start and end, marked in the browser's trace (console.timeStamp).
MARK_START, MARK_END = "latency:start", "latency:end"

# Installed before any page script: the long-task observer and the per-change timer.
PROBE = """
(() => {
  const MARK_START = "%s", MARK_END = "%s";
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
    // A warming trip sets the inputs too (explorables.js): the page's own, not a reader's change.
    if (!entry || entry.warming) return;
    const t0 = performance.now();
    lat.current = t0;
    console.timeStamp(MARK_START);
    // Bubble phase on window: after vega's own listener on the input has run.
    window.addEventListener(event.type, async () => {
      await entry.result.view.runAsync();
      const settled = performance.now();
      const [frame, painted] = await afterFrame();
      console.timeStamp(MARK_END);
      lat.changes.push({ t0, settled, frame, painted, work: settled - t0 + painted - frame });
      lat.current = null;
      done();
    }, { once: true });
  };
  document.addEventListener("input", start, true);
  document.addEventListener("change", start, true);
})();
""" % (MARK_START, MARK_END)


# Two frames and a task after them: whatever a scroll or a focus had to repaint is painted.
SETTLE = """
() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(resolve, 0))))
"""


@dataclass
class PageLatency:
    page: str
    controls: int = 0
    work_ms: list[float] = field(default_factory=list)  # one per change: main-thread CPU time
    span_ms: list[float] = field(default_factory=list)  # one per change: as the page times it (wall clock)
    long_tasks: int = 0  # > 50 ms, overlapping a change
    missed: list[str] = field(default_factory=list)  # actions that changed nothing

    @property
    def changes(self) -> int:
        return len(self.work_ms)

    def percentile(self, q: float, of: str = "work_ms") -> float:
        """The q-th percentile of the work per change (or of `of`: "span_ms"), inclusive method;
        the max at q = 100."""
        values = getattr(self, of)
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1] if q < 100 else max(values)


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
        controls = page.locator(".explorable-chart .vega-bind").all()
        browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
        for round_ in range(MAX_ROUNDS):
            driven = sum(_drive(page, control, result) for control in controls)
            if round_ == 0:
                result.controls = driven
            if not driven or page.evaluate("() => window.__latency.changes.length") >= MIN_CHANGES:
                break
        trace = browser.stop_tracing()
        changes = page.evaluate("() => window.__latency.changes")
        tasks = page.evaluate("() => window.__latency.longTasks")
        result.work_ms = main_thread_work(json.loads(trace)["traceEvents"])
        if len(result.work_ms) != len(changes):
            raise RuntimeError(f"{name}: the trace marks {len(result.work_ms)} changes, the page timed "
                               f"{len(changes)}")
        result.span_ms = [c["work"] for c in changes]
        result.long_tasks = sum(any(start < c["painted"] and start + duration > c["t0"] for c in changes)
                                for start, duration in tasks)
    context.close()
    return result


# ----------------------------------------------------------------------------------------------
# The work in the trace

TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "toplevel"]
TASKS = ("ThreadControllerImpl::RunTask", "RunTask")  # a task on a thread, whichever name it carries


def main_thread_work(events: list[dict]) -> list[float]:
    """Per change marked in the trace: the renderer main thread's CPU time (ms) in the tasks
    between its start and end marks, a task partly inside counted in proportion.

    CPU time (a trace event's `tdur`), not wall-clock time: on a machine of 2 cores the
    browser's own processes and threads (compositor, raster, GPU) take turns on the cores with
    the page's main thread, and its commit of a frame can block until the compositor has drawn
    the one before. Neither is work the page asked for; the page's own wall-clock timing, which
    includes them, is reported beside (span_ms).
    """
    marks = sorted((e for e in events if e.get("name") == "TimeStamp"
                    and (e.get("args", {}).get("data", {}).get("message") in (MARK_START, MARK_END))),
                   key=lambda e: e["ts"])
    if not marks:
        return []
    thread = (marks[0]["pid"], marks[0]["tid"])
    tasks = sorted((e for e in events if e.get("ph") == "X" and e.get("name") in TASKS
                    and (e["pid"], e["tid"]) == thread), key=lambda e: (e["ts"], -e.get("dur", 0)))
    outer, end = [], -1.0  # tasks not nested in another
    for t in tasks:
        if t["ts"] >= end:
            outer.append(t)
            end = t["ts"] + t.get("dur", 0)
    work, start = [], None
    for m in marks:
        if m["args"]["data"]["message"] == MARK_START:
            start = m["ts"]
        elif start is not None:
            work.append(sum(_cpu_inside(t, start, m["ts"]) for t in outer) / 1000)
            start = None
    return work


def _cpu_inside(task: dict, start: float, end: float) -> float:
    """The task's CPU time (µs) in proportion to the part of its wall-clock span in [start, end]."""
    dur = task.get("dur", 0)
    overlap = min(end, task["ts"] + dur) - max(start, task["ts"])
    if overlap <= 0 or dur <= 0:
        return 0.0
    return task.get("tdur", dur) * overlap / dur


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
