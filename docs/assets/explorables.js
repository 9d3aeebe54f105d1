// Renders every chart on the page from the Vega-Lite spec embedded in it, and re-renders them
// when the reader switches between the light and dark palette, keeping each slider's value.
// Specs are embedded (not fetched) because fetch() of local files fails on file:// pages.
(function () {
  "use strict";

  const charts = new Map(); // element -> {result, spec}
  const EMBED_OPTIONS = {
    renderer: "svg", // SVG marks carry aria-labels a screen reader can reach
    actions: { export: true, source: false, compiled: false, editor: false },
  };

  function isDark() {
    return document.body.getAttribute("data-md-color-scheme") === "slate";
  }

  function boundParams(spec) {
    const names = [];
    (function walk(node) {
      if (Array.isArray(node)) return node.forEach(walk);
      if (!node || typeof node !== "object") return;
      (node.params || []).forEach((p) => { if (p.bind && !names.includes(p.name)) names.push(p.name); });
      ["vconcat", "hconcat", "concat", "layer"].forEach((k) => walk(node[k]));
      if (node.spec) walk(node.spec);
    })(spec);
    return names;
  }

  async function render(el, state) {
    const spec = JSON.parse(el.getAttribute("data-spec"));
    const previous = charts.get(el);
    if (previous) previous.result.finalize();
    const options = Object.assign({}, EMBED_OPTIONS, isDark() ? { theme: "dark" } : {});
    const result = await window.vegaEmbed(el, spec, options);
    if (state) {
      for (const [name, value] of Object.entries(state)) result.view.signal(name, value);
      await result.view.runAsync();
      // Keep the bound inputs showing the restored values.
      el.querySelectorAll(".vega-bind input, .vega-bind select").forEach((input) => {
        const name = input.getAttribute("name");
        if (name in state) {
          if (input.type === "radio") input.checked = String(state[name]) === input.value;
          else input.value = state[name];
          const label = input.parentElement && input.parentElement.querySelector(".vega-bind-value");
          if (label) label.textContent = state[name];
        }
      });
    }
    charts.set(el, { result, spec });
    el.setAttribute("data-rendered", isDark() ? "dark" : "light");
    return result;
  }

  function snapshot(el) {
    const entry = charts.get(el);
    if (!entry) return null;
    const state = {};
    for (const name of boundParams(entry.spec)) state[name] = entry.result.view.signal(name);
    return state;
  }

  async function renderAll(keepState) {
    const elements = Array.from(document.querySelectorAll(".explorable-chart[data-spec]"));
    await Promise.all(elements.map((el) => render(el, keepState ? snapshot(el) : null).catch((err) => {
      el.textContent = "This chart could not be drawn: " + err.message + ". Its data table follows.";
      el.setAttribute("data-rendered", "error");
      console.error(err);
    })));
  }

  function start() {
    if (!window.vegaEmbed) {
      console.error("vega bundle missing: charts cannot be drawn");
      return;
    }
    window.explorables = { charts, ready: renderAll(false) };
    new MutationObserver(() => { window.explorables.ready = renderAll(true); })
      .observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
