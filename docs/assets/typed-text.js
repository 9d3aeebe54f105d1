// The tokenization page's text box: the reader's own text, tokenized in the browser by
// gpt-tokenizer with r50k_base, cl100k_base and o200k_base, drawn as token views (tokens.js).
//
// - The tokenizers (several MB of rank data) load only when the reader first focuses the box, or
//   when the page is opened from a link that carries text: one classic <script> per encoding,
//   which works from file:// (fetch would not). Their sizes come from assets/tokens-data.js.
// - Special tokens are treated as tiktoken treats them: a special token's name is plain text,
//   unless "allow special tokens" is ticked; then each of the encoding's own special tokens
//   (tiktoken's list, from tokens-data.js) becomes its single id.
// - Lone surrogates (half of a UTF-16 pair, which a paste can carry) are replaced by U+FFFD
//   before tokenizing, exactly as tiktoken does before it encodes.
// - Tokenizing runs on the main thread after a short pause in typing: a worker cannot load
//   scripts on a page opened from file://, and 100 KB tokenize in well under 200 ms.
// - The text is kept in the URL fragment (#text=...) up to FRAGMENT_MAX characters, so a link
//   reproduces it; longer text is not stored. The reader's text only ever becomes text nodes.
(function () {
  "use strict";

  const DATA = window.explorablesTokenData;
  const HERE = document.currentScript ? document.currentScript.src : document.baseURI;
  const FRAGMENT_MAX = 2000; // characters of text kept in the URL fragment
  const SHOWN_MAX = 2000; // tokens drawn per row; the counts always cover the whole text
  const PAUSE_MS = 150; // tokenize once typing pauses this long
  const NO_SPECIAL = new Set(); // gpt-tokenizer: no special token's name is refused or replaced

  const byName = DATA ? Object.fromEntries(DATA.encodings.map((e) => [e.name, e])) : {};

  // -- the tokenizers ----------------------------------------------------------------------

  let loading = null;

  function load() {
    if (!loading) {
      loading = Promise.all(DATA.encodings.map((e) => new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = new URL(e.src, HERE).href;
        script.onload = () => {
          const api = window[e.global];
          if (!api) return reject(new Error(`${e.name}: no tokenizer in ${e.src}`));
          // tiktoken's own split pattern (see generator/assets.py for why not gpt-tokenizer's)
          api.bytePairEncodingCoreProcessor.tokenSplitRegex = new RegExp(e.pattern, "gu");
          exactLookup(api.bytePairEncodingCoreProcessor);
          resolve();
        };
        script.onerror = () => reject(new Error(`${e.name}: could not load ${e.src}`));
        document.head.appendChild(script);
      })));
      loading.catch(() => { loading = null; }); // a later focus may try again
    }
    return loading;
  }

  // gpt-tokenizer 2.9.0 reads a token's bytes through a TextDecoder that drops a leading
  // byte-order mark, so it never finds the tokens that start with one (8 in cl100k_base, 9 in
  // o200k_base, such as "\ufeffusing"): look the bytes up exactly instead.
  function exactLookup(core) {
    const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    core.getBpeRankFromBytes = function (bytes) {
      let text;
      try { text = utf8.decode(bytes); } catch (e) { text = undefined; }
      const rank = text === undefined ? undefined : this.bytePairStringRankEncoder.get(text);
      if (rank !== undefined) return rank;
      const at = this.binarySearch(bytes);
      return at === -1 ? undefined : this.bytePairNonUtfSortedEncoder[at][1];
    };
  }

  function specialPattern(names) {
    const escaped = names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return new RegExp(escaped.join("|"), "g");
  }

  // Token ids of text in one encoding; special: {name: id} of the special tokens to honour.
  // gpt-tokenizer encodes the ordinary text; the special tokens are found here, left to right,
  // the way tiktoken does (its own allowedSpecial option misses a special token that does not
  // start the text).
  function encodeWith(name, text, special) {
    const api = window[byName[name].global];
    text = text.toWellFormed();
    const plain = (part) => (part ? api.encode(part, { disallowedSpecial: NO_SPECIAL }) : []);
    const names = Object.keys(special);
    if (names.length === 0) return plain(text);
    const ids = [];
    let at = 0;
    for (const match of text.matchAll(specialPattern(names))) {
      for (const id of plain(text.slice(at, match.index))) ids.push(id);
      ids.push(special[match[0]]);
      at = match.index + match[0].length;
    }
    for (const id of plain(text.slice(at))) ids.push(id);
    return ids;
  }

  function encode(name, text, allowSpecial) {
    return encodeWith(name, text, allowSpecial ? byName[name].special : {});
  }

  // The text as a user message in ChatML, ready for the assistant's reply, as the page's ChatML
  // view builds it: <|im_start|>user\n TEXT <|im_end|>\n <|im_start|>assistant\n
  function chat(text, allowSpecial) {
    const { encoding, markers } = DATA.chatml;
    const start = markers["<|im_start|>"], end = markers["<|im_end|>"];
    const special = allowSpecial ? { ...byName[encoding].special, ...markers } : {};
    return [start, ...encodeWith(encoding, "user\n" + text, special), end,
      ...encodeWith(encoding, "\n", {}), start, ...encodeWith(encoding, "assistant\n", {})];
  }

  const textEncoder = new TextEncoder();

  function bytesOf(name, id, extraSpecial) {
    const names = { ...byName[name].special, ...(extraSpecial || {}) };
    for (const [token, tokenId] of Object.entries(names)) if (tokenId === id) return textEncoder.encode(token);
    const piece = window[byName[name].global].bytePairEncodingCoreProcessor.tryDecodeToken(id);
    return typeof piece === "string" ? textEncoder.encode(piece) : Uint8Array.from(piece);
  }

  // -- the box -----------------------------------------------------------------------------

  const number = (n) => n.toLocaleString("en-US");
  const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

  function element(tag, props, ...children) {
    const el = document.createElement(tag);
    Object.assign(el, props || {});
    el.append(...children);
    return el;
  }

  function setUp(box) {
    const input = box.querySelector("textarea");
    const allow = box.querySelector(".typed-text-special");
    const model = box.querySelector(".typed-text-model");
    const status = box.querySelector(".typed-text-status");
    const summary = box.querySelector(".typed-text-summary");
    const table = box.querySelector(".typed-text-counts tbody");
    const stored = box.querySelector(".typed-text-stored");
    const total = DATA.encodings.reduce((sum, e) => sum + e.bytes, 0);
    const sizes = DATA.encodings.map((e) => `${e.name} ${megabytes(e.bytes)}`).join(", ");
    status.textContent = `The tokenizers (${megabytes(total)}: ${sizes}) load from this site when you first click in the box.`;

    // A token view like the page's others: the text/ids toggle, focusable tokens, the info line.
    const view = element("div", { className: "tokens", id: "tokens-typed" });
    const mode = element("fieldset", { className: "tokens-mode" }, element("legend", {}, "Show tokens as"));
    for (const value of ["text", "ids"]) {
      const radio = element("input", { type: "radio", name: "tokens-typed-mode", value, checked: value === "text" });
      mode.append(element("label", {}, radio, ` ${value}`));
    }
    const rows = element("div", { className: "typed-text-rows" });
    view.append(mode, element("div", { className: "tokens-panel" }, rows));
    box.querySelector(".typed-text-view").append(view);
    window.explorablesTokenView.setUp(view);

    let timer = null;

    function start() {
      status.textContent = `Loading the tokenizers (${megabytes(total)}: ${sizes})\u2026`;
      box.setAttribute("aria-busy", "true");
      return load().then(() => {
        box.dataset.ready = "true";
        box.removeAttribute("aria-busy");
        status.textContent = `Tokenizers loaded (${megabytes(total)}, ${DATA.tokenizer}).`;
      }, (error) => {
        box.removeAttribute("aria-busy");
        status.textContent = `The tokenizers could not be loaded: ${error.message}.`;
        throw error;
      });
    }

    function keep(text) {
      const chars = [...text].length;
      let fragment = "";
      if (text && chars <= FRAGMENT_MAX) {
        fragment = "#" + new URLSearchParams({ text, ...(allow.checked ? { special: "1" } : {}) })
          .toString().replaceAll("+", "%20");
      }
      stored.textContent = !text ? ""
        : fragment ? "The link to this page now holds your text."
        : `Longer than ${number(FRAGMENT_MAX)} characters: not kept in the link.`;
      history.replaceState(history.state, "", fragment || location.pathname + location.search);
    }

    function run() {
      if (!box.dataset.ready) return start().then(run, () => {});
      const text = input.value.toWellFormed();
      const started = performance.now();
      const results = DATA.encodings.map((e) => ({ name: e.name, ids: encode(e.name, text, allow.checked) }));
      const chatIds = chat(text, allow.checked);
      box.dataset.milliseconds = (performance.now() - started).toFixed(1);
      box.dataset.runs = String(Number(box.dataset.runs || 0) + 1);
      const chars = [...text].length;
      const [layers, heads, dHead] = model.value.split(",").map(Number);

      rows.replaceChildren();
      table.replaceChildren();
      const specials = (name, extra) => new Set(Object.values({ ...byName[name].special, ...(extra || {}) }));
      for (const { name, ids } of results) {
        const shown = ids.slice(0, SHOWN_MAX);
        rows.append(window.explorablesTokenView.row(name, `${name} \u00b7 ${number(ids.length)}`, shown,
          (id) => bytesOf(name, id), allow.checked ? specials(name) : new Set()));
        const n = ids.length;
        table.append(element("tr", {},
          element("th", { scope: "row" }, name),
          element("td", {}, number(n)),
          element("td", {}, n ? (chars / n).toFixed(2) : "\u2013"),
          element("td", {}, number(n * n)),
          element("td", {}, number(4 * n * n * dHead * heads * layers))));
      }
      const { encoding, markers } = DATA.chatml;
      const base = results.find((r) => r.name === encoding).ids.length;
      rows.append(window.explorablesTokenView.row(encoding,
        `ChatML, ${encoding} \u00b7 ${number(chatIds.length)} (+${chatIds.length - base})`,
        chatIds.slice(0, SHOWN_MAX), (id) => bytesOf(encoding, id, markers),
        specials(encoding, markers)));
      const longest = Math.max(...results.map((r) => r.ids.length));
      box.querySelector(".typed-text-truncated").textContent = longest > SHOWN_MAX
        ? `Each row shows its first ${number(SHOWN_MAX)} tokens; the counts cover the whole text.` : "";
      summary.textContent = `${number(chars)} characters: ` +
        results.map((r) => `${r.name} ${number(r.ids.length)} tokens`).join(", ") +
        `; ${number(chatIds.length)} as a ChatML message.`;
      status.textContent = `Tokenized in ${box.dataset.milliseconds} ms (${DATA.tokenizer}).`;
      keep(text);
    }

    const later = () => { clearTimeout(timer); timer = setTimeout(run, PAUSE_MS); };
    input.addEventListener("focus", () => { if (!box.dataset.ready) start().catch(() => {}); });
    input.addEventListener("input", later);
    allow.addEventListener("change", run);
    model.addEventListener("change", run);

    const params = new URLSearchParams(location.hash.slice(1));
    if (params.has("text")) { // opened from a link that carries text: show it at once
      input.value = params.get("text");
      allow.checked = params.get("special") === "1";
      run();
    }
  }

  window.explorablesTypedText = { load, encode, chat, bytesOf };

  function begin() {
    if (DATA) document.querySelectorAll(".typed-text").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", begin);
  else begin();
})();
