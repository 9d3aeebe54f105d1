// Token views (see generator/pages/tokens.py): a text/ids toggle, arrow keys between tokens, and
// a line describing the token under the pointer or the keyboard focus. Plain script, no fetch:
// it works on pages opened from file://.
(function () {
  "use strict";

  const GLYPHS = { "\u2423": " ", "\u2192": "\t", "\u21b5": "\n" }; // drawn glyph -> character

  function hexBytes(token) {
    if (token.classList.contains("p")) return token.textContent.split(" ");
    let text = "";
    token.childNodes.forEach((node) => {
      if (node.nodeType === Node.TEXT_NODE) text += node.nodeValue;
      else if (node.nodeName === "I") {
        const glyph = node.textContent;
        text += glyph in GLYPHS ? GLYPHS[glyph] : String.fromCodePoint(parseInt(glyph.slice(2), 16));
      }
    });
    return Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0"));
  }

  function tokensOf(seq) {
    return Array.from(seq.querySelectorAll(":scope > span")); // not the <br> after a newline
  }

  function describe(token) {
    const seq = token.parentElement;
    const all = tokensOf(seq);
    const position = all.indexOf(token);
    const bytes = hexBytes(token);
    const kind = token.classList.contains("p") ? ", part of a character: not valid UTF-8 alone"
      : token.classList.contains("s") ? ", a special token" : "";
    return `${seq.dataset.encoding}: position ${position} of ${all.length}, id ` +
      `${token.dataset.i}, ${bytes.length} byte${bytes.length === 1 ? "" : "s"}: ` +
      `${bytes.join(" ")}${kind}`;
  }

  function show(token) {
    const panel = token.closest("details, .tokens-panel");
    const info = panel && panel.querySelector(".tokens-info");
    if (info) info.textContent = describe(token);
  }

  function move(token, key) {
    const tokens = tokensOf(token.parentElement);
    const at = tokens.indexOf(token);
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tokens.length - 1 }[key];
    if (next === undefined || next < 0 || next >= tokens.length) return false;
    token.tabIndex = -1;
    tokens[next].tabIndex = 0;
    tokens[next].focus();
    return true;
  }

  function setUp(view) {
    view.querySelectorAll("details, .tokens-panel").forEach((panel) => {
      const info = document.createElement("p");
      info.className = "tokens-info";
      info.setAttribute("aria-live", "polite");
      panel.appendChild(info);
    });
    // The browser may restore a checked "ids" after a reload: follow the inputs, not a default.
    const sync = () => view.classList.toggle("ids", !!view.querySelector('.tokens-mode input[value="ids"]:checked'));
    view.querySelectorAll(".tokens-mode input").forEach((input) => input.addEventListener("change", sync));
    sync();
    const token = (event) => event.target.closest && event.target.closest(".tokens-seq > span");
    view.addEventListener("mouseover", (event) => { const t = token(event); if (t) show(t); });
    view.addEventListener("focusin", (event) => { const t = token(event); if (t) show(t); });
    view.addEventListener("keydown", (event) => {
      const t = token(event);
      if (t && move(t, event.key)) event.preventDefault();
    });
  }

  function start() {
    document.querySelectorAll(".tokens").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
