// Draws every chart on the page from the Vega-Lite spec embedded in it (fetch() of local files
// fails on file:// pages), when the chart comes into view or, once the reader reads on, near
// it. Keeps each chart usable without a mouse or a screen: controls named and grouped, the
// current setting announced, the actions menu named and closed by Escape. Every control's value lives in the URL fragment
// (#chart.param=value&…), so a link reproduces what its sender saw; switching the light/dark
// palette redraws the charts with the theme's colours and keeps their settings.
(function () {
  "use strict";

  const charts = new Map(); // element -> {result, spec, controls}
  const pending = new Map(); // element -> promise of its current drawing
  // A chart in the viewport is drawn at once. One this close to it is drawn once the reader
  // shows they are reading on (scrolls, points, touches, types or moves focus): a page opened at
  // its top spends nothing on charts the reader has not reached, and one who scrolls finds the
  // next chart drawn before it comes into view.
  const NEAR = "600px 0px";
  // Resolves the first time the reader does any of these.
  const ENGAGED = ["pointermove", "pointerdown", "touchstart", "keydown", "wheel", "scroll", "focusin"];
  const engaged = new Promise((resolve) => {
    const go = () => {
      ENGAGED.forEach((type) => window.removeEventListener(type, go, true));
      resolve();
    };
    ENGAGED.forEach((type) => window.addEventListener(type, go, { capture: true, passive: true }));
  });
  // Each chart is drawn in a task of its own, and none in the task that ran the Vega bundle: one
  // chart's first drawing is one long task, and between two the page can paint and answer input.
  const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

  // The Vega bundle (vega, vega-lite and vega-embed, 900 KB) is loaded when the first chart is
  // to be drawn, not with the page: a page opened at its top on a phone shows no chart, and
  // its text is ready to read without the bundle's parse and run. Beside this script's own file.
  const BUNDLE = ((document.currentScript && document.currentScript.src) || "").replace(/[^/]*$/, "vendor/vega-bundle.js");
  let bundle = null;

  function vegaReady() {
    if (window.vegaEmbed) return Promise.resolve();
    if (!bundle) {
      bundle = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = BUNDLE;
        script.onload = () => (window.vegaEmbed ? resolve() : reject(new Error("the Vega bundle did not load")));
        script.onerror = () => reject(new Error("the Vega bundle could not be loaded"));
        document.head.append(script);
      });
      bundle.catch(() => { bundle = null; }); // a later chart tries again
    }
    return bundle;
  }

  function isDark() {
    return document.body.getAttribute("data-md-color-scheme") === "slate";
  }

  // ------------------------------------------------------------------------------------------
  // Theme: chart text and guides take the page's own colours, read from Material's variables.

  // Read once per palette: getComputedStyle makes the browser bring the page's styles up to
  // date first, which while a page loads is most of what drawing a small chart costs.
  const themes = new Map(); // "dark" | "light" -> the Vega config of that palette

  function themeConfig() {
    const key = isDark() ? "dark" : "light";
    if (!themes.has(key)) themes.set(key, JSON.stringify(readTheme()));
    return JSON.parse(themes.get(key)); // a fresh copy for each chart: vega-embed may change it
  }

  function readTheme() {
    const css = getComputedStyle(document.body);
    const fg = css.getPropertyValue("--md-default-fg-color").trim() || (isDark() ? "#e2e4e9" : "#000000de");
    const light = css.getPropertyValue("--md-default-fg-color--light").trim() || fg;
    const faint = css.getPropertyValue("--md-default-fg-color--lightest").trim() || "#8884";
    return {
      background: null,
      text: { color: fg },
      title: { color: fg, subtitleColor: fg },
      axis: { labelColor: fg, titleColor: fg, domainColor: light, tickColor: light, gridColor: faint },
      legend: { labelColor: fg, titleColor: fg },
      header: { labelColor: fg, titleColor: fg },
      style: { "guide-label": { fill: fg }, "guide-title": { fill: fg }, "group-title": { fill: fg } },
    };
  }

  // ------------------------------------------------------------------------------------------
  // Controls: every bound param of a spec, what values it accepts, how it reads aloud.

  // A grid slider's param is an index into the grid; the grid itself is the array literal that
  // indexes it in the spec's expressions (generator/charts/common.py writes `[v0,v1,…][name]`).
  const GRID = /\[(-?[\d.e+-]+(?:,-?[\d.e+-]+)*)\]\[([A-Za-z_]\w*)\]/g;

  function controlsOf(spec) {
    const controls = new Map(); // param name -> {name, label, bind, grid}
    (function walk(node) {
      if (Array.isArray(node)) return node.forEach(walk);
      if (!node || typeof node !== "object") return;
      (node.params || []).forEach((p) => {
        if (p.bind && p.bind.input && !controls.has(p.name)) {
          controls.set(p.name, { name: p.name, label: (p.bind.name || p.name).trim(), bind: p.bind, grid: null });
        }
      });
      Object.values(node).forEach((v) => { if (v && typeof v === "object") walk(v); });
    })(spec);
    const text = JSON.stringify(spec);
    for (const m of text.matchAll(GRID)) {
      const c = controls.get(m[2]);
      if (c && c.bind.input === "range") c.grid = m[1].split(",").map(Number);
    }
    return controls;
  }

  function shown(control, value) {
    if (control.grid) return String(control.grid[value]);
    const options = control.bind.options;
    if (options && control.bind.labels) {
      const i = options.findIndex((o) => String(o) === String(value));
      if (i >= 0) return String(control.bind.labels[i]);
    }
    return String(value);
  }

  // The value a fragment entry stands for, or undefined if it is not one the control accepts.
  function parse(control, raw) {
    const bind = control.bind;
    if (control.grid) {
      const i = control.grid.findIndex((v) => String(v) === raw || v === Number(raw));
      return i >= 0 ? i : undefined;
    }
    if (bind.options) return bind.options.find((o) => String(o) === raw);
    if (bind.input === "range") {
      const x = Number(raw);
      if (raw === "" || !Number.isFinite(x) || x < bind.min || x > bind.max) return undefined;
      const step = bind.step || 1;
      const k = Math.round((x - bind.min) / step);
      return Math.abs(bind.min + k * step - x) < 1e-9 * Math.max(1, Math.abs(x)) ? x : undefined;
    }
    if (bind.input === "checkbox") return raw === "true" ? true : raw === "false" ? false : undefined;
    return undefined;
  }

  function serialise(control, value) {
    return control.grid ? String(control.grid[value]) : String(value);
  }

  // ------------------------------------------------------------------------------------------
  // The URL fragment: "#<chart>.<param>=<value>&…"; anything else in it is left alone.

  function chartKey(el) {
    const name = el.getAttribute("data-name") || "";
    const page = (location.pathname.split("/").pop() || "").replace(/\.html$/, "");
    return name.startsWith(page + "-") ? name.slice(page.length + 1) : name;
  }

  function readFragment() {
    const entries = new Map();
    const hash = decodeURIComponent(location.hash.slice(1));
    if (!hash.includes("=")) return entries;
    for (const part of hash.split("&")) {
      const eq = part.indexOf("=");
      if (eq > 0) entries.set(part.slice(0, eq), part.slice(eq + 1));
    }
    return entries;
  }

  function stateFromFragment(el, controls) {
    const key = chartKey(el);
    const state = {};
    for (const [k, raw] of readFragment()) {
      if (!k.startsWith(key + ".")) continue;
      const control = controls.get(k.slice(key.length + 1));
      const value = control && parse(control, raw);
      if (value !== undefined) state[control.name] = value;
    }
    return state;
  }

  function writeFragment() {
    const entries = readFragment();
    for (const [el, entry] of charts) {
      const key = chartKey(el);
      for (const c of entry.controls.values()) {
        entries.set(`${key}.${c.name}`, serialise(c, entry.result.view.signal(c.name)));
      }
    }
    const hash = Array.from(entries, ([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
    try {
      history.replaceState(history.state, "", "#" + hash);
    } catch (err) {
      // Some browsers refuse replaceState on file:// pages; the page still works without it.
    }
  }

  // ------------------------------------------------------------------------------------------
  // Drawing one chart

  function title(el) {
    const caption = el.closest("figure") && el.closest("figure").querySelector("figcaption");
    return caption ? caption.firstChild.textContent.replace(/\.\s*$/, "").trim() : "chart";
  }

  function settingText(entry) {
    return Array.from(entry.controls.values())
      .map((c) => `${c.label} ${shown(c, entry.result.view.signal(c.name))}`).join(", ");
  }

  // The chart's name carries its setting; on a change, the figure's live region says it too.
  function announce(el, entry, speak) {
    const status = el.parentElement.querySelector(".explorable-status");
    const setting = settingText(entry);
    if (speak && status && setting) status.textContent = `${title(el)}: ${setting}`;
    const canvas = el.querySelector("canvas.marks");
    if (canvas) {
      const description = entry.spec.description || title(el);
      canvas.setAttribute("role", "img"); // a picture with a name
      canvas.setAttribute("aria-label", setting ? `${description} Showing ${setting}.` : description);
    }
  }

  function syncInputs(el, entry) {
    for (const c of entry.controls.values()) {
      el.querySelectorAll(`.vega-bind [name="${c.name}"]`).forEach((input) => {
        const value = input === document.activeElement && c.grid ? Number(input.value) : entry.result.view.signal(c.name);
        if (input.type === "radio") input.checked = String(value) === input.value;
        else if (String(input.value) !== String(value)) input.value = value;
        if (c.grid) {
          input.setAttribute("aria-valuetext", shown(c, value));
          const label = input.parentElement.querySelector(".vega-bind-value");
          if (label) label.textContent = shown(c, value);
        }
      });
    }
  }

  // Radio groups become named radiogroups; the actions menu gets a name and closes on Escape.
  function label(el, entry) {
    el.querySelectorAll(".vega-bind").forEach((bind) => {
      const radios = bind.querySelector(".vega-bind-radio");
      const name = bind.querySelector(".vega-bind-name");
      if (radios && name) {
        radios.setAttribute("role", "radiogroup");
        radios.setAttribute("aria-label", name.textContent.trim());
      }
    });
    el.querySelectorAll(".vega-bind input[type=range]").forEach((input) => {
      const c = entry.controls.get(input.getAttribute("name"));
      if (c && c.grid) {
        input.setAttribute("data-grid", JSON.stringify(c.grid));
        // vega writes the raw index into the span after the input; show the grid value instead.
        const raw = input.nextElementSibling;
        if (raw && raw.tagName === "SPAN") raw.hidden = true;
        const value = document.createElement("span");
        value.className = "vega-bind-value";
        value.setAttribute("aria-hidden", "true"); // the input's aria-valuetext says it
        input.after(value);
        // After vega's own listener, which writes the raw index into the label.
        input.addEventListener("input", () => syncInputs(el, entry));
      }
    });
    const details = el.querySelector(".vega-embed details");
    if (details) {
      const summary = details.querySelector("summary");
      summary.setAttribute("aria-label", `Download options for the chart \u201c${title(el)}\u201d`);
      details.removeAttribute("title");
      details.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && details.open) {
          details.open = false;
          summary.focus();
          event.stopPropagation();
        }
      });
    }
  }

  // A mark that draws nothing (a filter left it empty) would be announced as an unnamed graphic.
  async function render(el, state) {
    await vegaReady();
    await nextTask();
    const spec = JSON.parse(el.getAttribute("data-spec"));
    const controls = controlsOf(spec);
    const previous = charts.get(el);
    if (previous) previous.result.finalize();
    const still = new Set((((spec.usermeta || {}).explorables || {}).static_position) || []);
    const result = await window.vegaEmbed(el, spec, {
      patch: still.size ? (vg) => placeOnce(vg, still) : undefined,
      // Canvas: SVG nodes (one per mark, each with its own accessible label) cost more to
      // repaint than a frame allows. Hover and tooltips work the same; a screen reader reads
      // the chart's description, its live setting and its data table instead of every mark.
      renderer: "canvas",
      actions: { export: true, source: false, compiled: false, editor: false },
      config: themeConfig(),
    });
    const entry = { el, result, spec, controls };
    if (state && Object.keys(state).length) {
      for (const [name, value] of Object.entries(state)) result.view.signal(name, value);
      await result.view.runAsync();
    }
    charts.set(el, entry);
    label(el, entry);
    syncInputs(el, entry);
    announce(el, entry, false);
    for (const c of controls.values()) {
      result.view.addSignalListener(c.name, () => {
        if (entry.warming) return;
        syncInputs(el, entry);
        afterPause(entry, () => {
          announce(el, entry, true);
          writeFragment();
          refreshTable(el);
        });
      });
    }
    const details = el.closest("figure").querySelector("details.explorable-table");
    if (details && details.open && details.dataset.every !== "true") fillTable(details, false);
    el.setAttribute("data-rendered", isDark() ? "dark" : "light");
    if (!warmed.has(el)) {
      warmed.add(el);
      warm(entry);
    }
    return result;
  }

  // Marks the chart names as keeping their place at every setting (usermeta.explorables.
  // static_position: a byte's box in the BPE chart) get their position channels in the compiled
  // spec's enter set, computed when an item is made, rather than in its update set, which runs
  // for every item on every change.
  const POSITION = ["x", "x2", "xc", "width", "y", "y2", "yc", "height"];

  function placeOnce(vg, names) {
    (function walk(node) {
      for (const mark of node.marks || []) {
        const update = mark.encode && mark.encode.update;
        // Vega-Lite names a unit's marks after it: "<name>_marks", or "<name>_<k>_marks" in a layer.
        const unit = mark.name && mark.name.replace(/(_\d+)?_marks$/, "");
        if (update && mark.name !== unit && names.has(unit)) {
          const enter = (mark.encode.enter = mark.encode.enter || {});
          for (const channel of POSITION) {
            if (channel in update) {
              enter[channel] = update[channel];
              delete update[channel];
            }
          }
        }
        walk(mark);
      }
    })(vg);
    return vg;
  }

  // ------------------------------------------------------------------------------------------
  // Warming. A chart's first changes run Vega's update path cold (the JavaScript engine has not
  // compiled it yet) and take two to four times as long as later ones. So once a chart is
  // drawn and the reader has engaged with the page, in its idle time, each control is moved to
  // another setting and back, a few times, each trip in one task: no frame ever shows the
  // detour, nothing is announced or written to the URL, and the reader's first change costs
  // what their tenth does.

  const warmed = new Set(); // chart elements whose warming has been scheduled
  const WARM_TRIPS = 3; // trips per control: enough for the engine to compile the update path
  // Warming starts when the reader engages: a cold trip can take longer than 50 ms, and while the
  // page is loading it would hold up its first paints.
  let warming = engaged;

  function otherValue(c, value) {
    const bind = c.bind;
    if (c.grid) return value + 1 < c.grid.length ? value + 1 : value - 1; // grid index
    if (bind.options) {
      const i = bind.options.findIndex((o) => String(o) === String(value));
      return bind.options.length > 1 ? bind.options[(i + 1) % bind.options.length] : undefined;
    }
    if (bind.input === "range") {
      const step = bind.step || 1;
      return value + step <= bind.max ? value + step : value - step >= bind.min ? value - step : undefined;
    }
    if (bind.input === "checkbox") return !value;
    return undefined;
  }

  const idle = window.requestIdleCallback
    ? (work) => new Promise((resolve) => requestIdleCallback(() => resolve(work()), { timeout: 4000 }))
    : (work) => new Promise((resolve) => setTimeout(() => resolve(work()), 50));

  // Sets a control's input to `value` and fires the event Vega's binding listens for, as a
  // reader's change does, so that a trip runs the whole path of a change (the binding, the page's
  // own listeners, the slider's label), not only Vega's dataflow: the first changes through an
  // input cost half as much again as later ones when only the dataflow was warmed. False if the
  // control has no input that takes the value.
  function throughInput(entry, c, value) {
    const inputs = Array.from(entry.el.querySelectorAll(`.vega-bind [name="${c.name}"]`));
    const input = c.bind.input === "radio" ? inputs.find((i) => i.value === String(value)) : inputs[0];
    if (!input) return false;
    if (c.bind.input === "range") input.value = value;
    else if (c.bind.input === "select") input.value = String(value);
    else if (c.bind.input === "radio") input.checked = true;
    else if (c.bind.input === "checkbox") input.checked = !!value;
    else return false;
    input.dispatchEvent(new Event(c.bind.input === "range" ? "input" : "change"));
    return true;
  }

  function warm(entry) {
    const view = entry.result.view;
    const trips = [];
    for (let k = 0; k < WARM_TRIPS; k++) trips.push(...entry.controls.values());
    const trip = async (c) => {
      if (charts.get(entry.el) !== entry) return; // redrawn since (a theme switch)
      const value = view.signal(c.name);
      const other = otherValue(c, value);
      if (other === undefined) return;
      entry.warming = true;
      try {
        for (const v of [other, value]) {
          if (!throughInput(entry, c, v)) view.signal(c.name, v);
          await view.runAsync();
        }
      } finally {
        entry.warming = false;
      }
    };
    warming = trips.reduce((done, c) => done.then(() => idle(() => trip(c))), warming).catch(console.error);
  }

  // What the reader does not see move (the live region, the URL fragment, an open data table)
  // is brought up to date once the controls rest, in a task of its own: a held arrow key repeats
  // some 30 times a second, and every repaint in between stays within its frame. A screen reader
  // hears the setting the reader stopped at, not every one passed on the way.
  const PAUSE_MS = 200;

  function afterPause(entry, work) {
    clearTimeout(entry.pause);
    entry.pause = setTimeout(work, PAUSE_MS);
  }

  function snapshot(el) {
    const entry = charts.get(el);
    if (!entry) return null;
    const state = {};
    for (const name of entry.controls.keys()) state[name] = entry.result.view.signal(name);
    return state;
  }

  function draw(el, keepState) {
    const previous = pending.get(el) || Promise.resolve();
    const next = previous.then(() => {
      const state = keepState ? snapshot(el) : stateFromFragment(el, controlsOf(JSON.parse(el.getAttribute("data-spec"))));
      return render(el, state);
    }).catch((err) => {
      el.textContent = "This chart could not be drawn: " + err.message + ". Its data table follows.";
      el.setAttribute("data-rendered", "error");
      console.error(err);
    });
    pending.set(el, next);
    return next;
  }

  // ------------------------------------------------------------------------------------------
  // Data tables: each chart's twin, built from the spec's own inline data when a reader first
  // opens it (the numbers are in the page once, in the spec; the table costs no page weight).

  function datasets(spec) {
    const found = [];
    (function walk(node) {
      if (Array.isArray(node)) return node.forEach(walk);
      if (!node || typeof node !== "object") return;
      const data = node.data;
      if (data && Array.isArray(data.values) && !found.includes(data.values)) found.push(data.values);
      Object.values(node).forEach(walk);
    })(spec);
    Object.values(spec.datasets || {}).forEach((values) => { if (!found.includes(values)) found.push(values); });
    return found;
  }

  function cell(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toPrecision(6)));
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function table(rows, caption) {
    const columns = [];
    rows.forEach((row) => Object.keys(row).forEach((c) => {
      if (!c.startsWith("_") && !columns.includes(c)) columns.push(c);
    }));
    const el = (tag, attrs, text) => {
      const node = document.createElement(tag);
      Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
      if (text !== undefined) node.textContent = text; // data stays text, never markup
      return node;
    };
    // A class of its own: Material styles class-less tables and adds class="" to a focused one,
    // which would change the layout as a reader tabs in. tabindex lets a keyboard scroll it.
    const t = el("table", { class: "explorable-data", tabindex: "0" });
    t.append(el("caption", {}, caption));
    const head = el("tr");
    columns.forEach((c) => head.append(el("th", { scope: "col" }, c)));
    const thead = el("thead");
    thead.append(head);
    t.append(thead);
    const body = el("tbody");
    rows.forEach((row) => {
      const tr = el("tr");
      columns.forEach((c) => tr.append(el("td", {}, cell(row[c]))));
      body.append(tr);
    });
    t.append(body);
    return t;
  }

  // The rows behind the marks the chart draws now (its current setting), grouped by their
  // fields: every item of every mark of the scenegraph, axes, legends and titles left out.
  function drawnRows(view) {
    const groups = new Map(); // field names -> rows
    const seen = new Set();
    (function walk(mark) {
      if (!mark || !mark.items || ["axis", "legend", "title"].some((r) => (mark.role || "").startsWith(r))) return;
      mark.items.forEach((item) => {
        if (mark.marktype === "group") return (item.items || []).forEach(walk);
        const datum = item.datum;
        if (mark.role !== "mark" || !datum || seen.has(datum)) return;
        seen.add(datum);
        const key = Object.keys(datum).filter((c) => !c.startsWith("_")).join("\u0000");
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(datum);
      });
    })(view.scenegraph().root);
    return Array.from(groups.values());
  }

  // The table shows the rows drawn now, or every row of the chart's data, as the reader picks.
  function fillTable(details, every) {
    const chart = details.closest("figure").querySelector(".explorable-chart[data-spec]");
    const entry = charts.get(chart);
    const all = every === undefined ? details.dataset.every === "true" || !entry : every;
    details.querySelectorAll("table.explorable-data, .explorable-rows").forEach((n) => n.remove());
    const groups = all ? datasets(JSON.parse(chart.getAttribute("data-spec"))) : drawnRows(entry.result.view);
    const count = groups.reduce((n, rows) => n + rows.length, 0);
    const mode = document.createElement("p");
    mode.className = "explorable-rows";
    mode.textContent = all ? `Every row of the chart's data (${count}). ` : `The ${count} rows drawn now. `;
    if (entry) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "explorable-rows-toggle";
      toggle.textContent = all ? "Show only the rows drawn now" : "Show every row";
      toggle.addEventListener("click", () => {
        fillTable(details, !all);
        details.querySelector(".explorable-rows-toggle").focus();
      });
      mode.append(toggle);
    }
    details.append(mode);
    const caption = details.dataset.caption + (all ? "" : " (as drawn now)");
    groups.forEach((rows) => details.append(table(rows, caption)));
    details.dataset.every = entry ? String(all) : ""; // "": not drawn yet, not the reader's choice
    details.dataset.filled = "true";
  }

  function refreshTable(el) {
    const details = el.closest("figure").querySelector("details.explorable-table");
    if (details && details.open && details.dataset.every !== "true") fillTable(details);
  }

  // ------------------------------------------------------------------------------------------
  // The page

  function elements() {
    return Array.from(document.querySelectorAll(".explorable-chart[data-spec]"));
  }

  function drawAll() {
    observer && observer.disconnect();
    elements().forEach((el) => { if (!pending.has(el)) draw(el, false); });
    return settled();
  }

  function settled() {
    return Promise.all(Array.from(pending.values())).then(() => undefined);
  }

  let observer = null;

  function start() {
    const search = document.querySelector(".md-search[role=dialog]");
    if (search && !search.hasAttribute("aria-label")) search.setAttribute("aria-label", "Search");
    // Without IntersectionObserver (an old browser), every chart is drawn at once.
    const eager = !("IntersectionObserver" in window);
    window.explorables = {
      charts,
      drawAll,
      get ready() { return settled(); },
      get warmed() { return settled().then(() => warming); }, // every drawn chart warmed
    };
    document.querySelectorAll("details.explorable-table").forEach((details) => {
      details.addEventListener("toggle", () => { if (details.open) fillTable(details); });
      if (details.open) fillTable(details);
    });
    if (eager) {
      drawAll();
    } else {
      const near = new Set(); // charts near the viewport, not yet drawn
      let reading = false; // the reader has engaged
      const drawNow = (el) => {
        near.delete(el);
        observer.unobserve(el);
        if (!pending.has(el)) draw(el, false);
      };
      observer = new IntersectionObserver((seen) => {
        seen.forEach((e) => {
          if (!e.isIntersecting) return near.delete(e.target);
          const box = e.boundingClientRect;
          if (reading || (box.bottom > 0 && box.top < window.innerHeight)) drawNow(e.target);
          else near.add(e.target);
        });
      }, { rootMargin: NEAR });
      elements().forEach((el) => observer.observe(el));
      engaged.then(() => {
        reading = true;
        Array.from(near).forEach(drawNow);
      });
    }
    new MutationObserver(() => {
      Array.from(charts.keys()).forEach((el) => draw(el, true));
    }).observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
