// Token views (see generator/pages/tokens.py): a text/ids toggle, arrow keys between tokens, and
// a line describing the token under the pointer or the keyboard focus. Plain script, no fetch:
// it works on pages opened from file://. The glyph table comes from the generated
// assets/tokens-data.js (built from tokens.py's GLYPHS), loaded before this file.
// window.explorablesTokenView lets the text box (typed-text.js) draw its tokens the same way.
(function () {
  "use strict";

  const GLYPHS = (window.explorablesTokenData || {}).glyphs || {}; // character -> drawn glyph
  const CHARACTERS = Object.fromEntries(Object.entries(GLYPHS).map(([ch, glyph]) => [glyph, ch]));
  // Drawn as their code point, as tokens.py's visible() does.
  const INVISIBLE = /^[\p{Cc}\p{Cf}\p{Zs}\p{Zl}\p{Zp}]$/u;

  function hexBytes(token) {
    if (token.classList.contains("partial-utf8")) return token.textContent.split(" ");
    let text = "";
    token.childNodes.forEach((node) => {
      if (node.nodeType === Node.TEXT_NODE) text += node.nodeValue;
      else if (node.nodeName === "I") {
        const glyph = node.textContent;
        text += glyph in CHARACTERS ? CHARACTERS[glyph] : String.fromCodePoint(parseInt(glyph.slice(2), 16));
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
    const kind = token.classList.contains("partial-utf8") ? ", part of a character: not valid UTF-8 alone"
      : token.classList.contains("special") ? ", a special token" : "";
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

  // -- token spans built in the browser, as tokens.py's token_span() writes them ---------------

  function visible(text, into) {
    // Text nodes only: whatever the reader typed never becomes markup.
    let plain = "";
    const flush = () => { if (plain) into.appendChild(document.createTextNode(plain)); plain = ""; };
    for (const ch of text) {
      if (ch in GLYPHS || INVISIBLE.test(ch)) {
        flush();
        const glyph = document.createElement("i");
        glyph.textContent = ch in GLYPHS ? GLYPHS[ch]
          : "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
        into.appendChild(glyph);
      } else plain += ch;
    }
    flush();
  }

  const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

  function tokenSpan(id, bytes, special, first) {
    const span = document.createElement("span");
    span.dataset.i = String(id);
    if (first) span.tabIndex = 0;
    let text;
    try { text = strictUtf8.decode(bytes); } catch (e) { text = null; }
    if (text === null) {
      span.className = "partial-utf8";
      span.textContent = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
      return [span];
    }
    if (special) span.className = "special";
    visible(text, span);
    // Line breaks go after the token's box, so the next token starts on a new line.
    return [span, ...Array.from(text.matchAll(/\n/g), () => document.createElement("br"))];
  }

  // One encoding's tokens: a label, then one span per token (bytesOf(id) -> Uint8Array).
  function row(encoding, label, ids, bytesOf, specialIds) {
    const div = document.createElement("div");
    div.className = "tokens-row";
    const name = document.createElement("span");
    name.className = "tokens-encoding";
    name.textContent = label;
    const seq = document.createElement("span");
    seq.className = "tokens-seq";
    seq.dataset.encoding = encoding;
    const parts = [];
    ids.forEach((id, n) => parts.push(...tokenSpan(id, bytesOf(id), specialIds.has(id), n === 0)));
    seq.append(...parts);
    div.append(name, seq);
    return div;
  }

  window.explorablesTokenView = { setUp, row };

  function start() {
    document.querySelectorAll(".tokens").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
