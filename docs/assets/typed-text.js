// The tokenization page's text box: the reader's own text, tokenized in the browser with
// r50k_base, cl100k_base and o200k_base, drawn as token views (tokens.js). The rank data and the
// merge of short pieces are gpt-tokenizer's; the splitting is tiktoken's own (patterns and
// special tokens from tokens-data.js), and long pieces are merged here, the same way but faster.
//
// - The tokenizers (several MB of rank data) load only when the reader first focuses the box, or
//   when the page is opened from a link that carries text: one classic <script> per encoding,
//   which works from file:// (fetch would not). Their sizes come from assets/tokens-data.js.
// - Special tokens are treated as tiktoken treats them: a special token's name is plain text,
//   unless "allow special tokens" is ticked; then each of the encoding's own special tokens
//   (tiktoken's list, from tokens-data.js) becomes its single id.
// - Lone surrogates (half of a UTF-16 pair, which a paste can carry) are replaced by U+FFFD
//   before tokenizing, exactly as tiktoken does before it encodes.
// - Tokenizing runs on the main thread after a short pause in typing, in slices of a few
//   milliseconds so that typing stays responsive (a worker cannot load scripts on a page opened
//   from file://); a run that the reader's next keystroke makes stale gives up.
// - The text is kept in the URL fragment (#text=...) up to FRAGMENT_MAX characters, so a link
//   reproduces it; longer text is not stored. The reader's text only ever becomes text nodes.
(function () {
  "use strict";

  const DATA = window.explorablesTokenData;
  const HERE = document.currentScript ? document.currentScript.src : document.baseURI;
  const FRAGMENT_MAX = 2000; // characters of text kept in the URL fragment
  const SHOWN_MAX = 2000; // tokens drawn per row; the counts always cover the whole text
  const PAUSE_MS = 150; // tokenize once typing pauses this long

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
  // o200k_base, such as "\ufeffusing"; it keeps them all as bytes): look those up as bytes.
  function exactLookup(core) {
    const lookup = core.getBpeRankFromBytes;
    core.getBpeRankFromBytes = function (bytes) {
      if (bytes[0] !== 0xef || bytes[1] !== 0xbb || bytes[2] !== 0xbf) return lookup.call(this, bytes);
      const at = this.binarySearch(bytes);
      return at === -1 ? undefined : this.bytePairNonUtfSortedEncoder[at][1];
    };
  }

  function specialPattern(names) {
    const escaped = names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return new RegExp(escaped.join("|"), "g");
  }

  // -- encoding, the way tiktoken does it ----------------------------------------------------
  //
  // Each step is a generator that yields now and then, so the box can tokenize a long text in
  // slices and stay responsive; encode() and chat() run the same steps to the end at once.

  const textEncoder = new TextEncoder();
  const LONG_PIECE = 48; // UTF-16 code units: longer pieces are merged with a heap, in O(n log n)

  // Token ids of text in one encoding; special: {name: id} of the special tokens to honour.
  // Special tokens are found left to right, and the text between them is cut into pieces by
  // the encoding's split pattern and each piece merged on its own, as in tiktoken.
  function* encodeSteps(name, text, special) {
    const core = window[byName[name].global].bytePairEncodingCoreProcessor;
    const ids = [];
    let count = 0;
    function* plain(part) {
      for (const match of part.matchAll(core.tokenSplitRegex)) {
        const piece = match[0];
        const rank = core.getBpeRankFromString(piece);
        if (rank !== undefined) ids.push(rank);
        else if (piece.length <= LONG_PIECE) for (const id of core.bytePairEncode(piece)) ids.push(id);
        else for (const id of mergeLong(core, textEncoder.encode(piece))) ids.push(id);
        if (++count % 64 === 0) yield;
      }
    }
    text = text.toWellFormed();
    let at = 0;
    const names = Object.keys(special);
    if (names.length) {
      for (const match of text.matchAll(specialPattern(names))) {
        yield* plain(text.slice(at, match.index));
        ids.push(special[match[0]]);
        at = match.index + match[0].length;
      }
    }
    yield* plain(text.slice(at));
    return ids;
  }

  // The text as a user message in ChatML, ready for the assistant's reply, as the page's ChatML
  // view builds it: <|im_start|>user\n TEXT <|im_end|>\n <|im_start|>assistant\n
  function* chatSteps(text, allowSpecial) {
    const { encoding, markers } = DATA.chatml;
    const start = markers["<|im_start|>"], end = markers["<|im_end|>"];
    const special = allowSpecial ? { ...byName[encoding].special, ...markers } : {};
    const content = yield* encodeSteps(encoding, "user\n" + text, special);
    const newline = yield* encodeSteps(encoding, "\n", {});
    const reply = yield* encodeSteps(encoding, "assistant\n", {});
    return [start, ...content, end, ...newline, start, ...reply];
  }

  function* everySteps(text, allowSpecial) {
    const results = [];
    for (const e of DATA.encodings) {
      results.push({ name: e.name, ids: yield* encodeSteps(e.name, text, allowSpecial ? e.special : {}) });
    }
    const { encoding, markers } = DATA.chatml;
    const markerNamed = allowSpecial && Object.keys(markers).some((m) => text.includes(m));
    if (!text || /^\p{White_Space}/u.test(text) || markerNamed) {
      return { results, chatIds: yield* chatSteps(text, allowSpecial) };
    }
    // Text that starts with no whitespace is cut as on its own after "user\n" (the newline is a
    // piece by itself), so the message reuses the text's own ids: [user, \n, ...ids].
    const head = yield* encodeSteps(encoding, "user\n", {});
    const ids = results.find((r) => r.name === encoding).ids;
    const start = markers["<|im_start|>"], end = markers["<|im_end|>"];
    const tail = [end, ...(yield* encodeSteps(encoding, "\n", {})), start,
      ...(yield* encodeSteps(encoding, "assistant\n", {}))];
    return { results, chatIds: [start, ...head, ...ids, ...tail] };
  }

  function finish(steps) {
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  const SLICE_MS = 12; // work between two breaks that let the browser handle typing
  const pause = () => (window.scheduler && scheduler.yield ? scheduler.yield()
    : new Promise((resolve) => setTimeout(resolve, 0)));

  // steps run in slices; null if stale() says the reader has changed the text meanwhile.
  async function sliced(steps, stale) {
    let until = performance.now() + SLICE_MS;
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
      if (performance.now() > until) {
        await pause();
        if (stale()) return null;
        until = performance.now() + SLICE_MS;
      }
    }
  }

  const encode = (name, text, allowSpecial) =>
    finish(encodeSteps(name, text, allowSpecial ? byName[name].special : {}));
  const chat = (text, allowSpecial) => finish(chatSteps(text, allowSpecial));

  // Byte-pair merge of one piece: always the lowest-ranked pair of neighbouring parts first, the
  // leftmost of equal ones, as tiktoken does; with a heap, so that a piece of thousands of bytes
  // (a long word, a run of symbols) takes milliseconds, not seconds.
  function mergeLong(core, bytes) {
    const n = bytes.length;
    const next = new Int32Array(n + 1).map((_, i) => i + 1); // part i is bytes[i, next[i])
    const prev = new Int32Array(n + 1).map((_, i) => i - 1);
    const alive = new Uint8Array(n + 1).fill(1);
    const heap = []; // [rank, start, end] of a pair of neighbouring parts
    const less = (a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
    const swap = (i, j) => { const t = heap[i]; heap[i] = heap[j]; heap[j] = t; };
    function push(item) {
      heap.push(item);
      for (let i = heap.length - 1; i > 0;) {
        const up = (i - 1) >> 1;
        if (!less(heap[i], heap[up])) break;
        swap(i, up);
        i = up;
      }
    }
    function pop() {
      const top = heap[0], last = heap.pop();
      if (heap.length) {
        heap[0] = last;
        for (let i = 0; ;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < heap.length && less(heap[l], heap[m])) m = l;
          if (r < heap.length && less(heap[r], heap[m])) m = r;
          if (m === i) break;
          swap(i, m);
          i = m;
        }
      }
      return top;
    }
    function pair(i) { // the part at i with its right neighbour, if that is a token
      const j = next[i];
      if (j >= n) return;
      const rank = core.getBpeRankFromBytes(bytes.subarray(i, next[j]));
      if (rank !== undefined) push([rank, i, next[j]]);
    }
    for (let i = 0; i < n - 1; i++) pair(i);
    while (heap.length) {
      const [, i, end] = pop();
      if (!alive[i] || next[i] >= n || next[next[i]] !== end) continue; // merged away since
      alive[next[i]] = 0;
      next[i] = end;
      prev[end] = i;
      if (prev[i] >= 0) pair(prev[i]);
      pair(i);
    }
    const ids = [];
    for (let i = 0; i < n; i = next[i]) ids.push(core.getBpeRankFromBytesOrThrow(bytes.subarray(i, next[i])));
    return ids;
  }


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
    const status = box.querySelector(".typed-text-status"); // a live region: loading only
    const timing = box.querySelector(".typed-text-timing");
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
    const loaded = `Tokenizers loaded (${megabytes(total)}, ${DATA.tokenizer}).`;

    function start() {
      status.textContent = `Loading the tokenizers (${megabytes(total)}: ${sizes})\u2026`;
      box.setAttribute("aria-busy", "true");
      return load().then(() => {
        box.dataset.ready = "true";
        box.removeAttribute("aria-busy");
        status.textContent = loaded;
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

    let generation = 0; // of the latest run: an older one still slicing gives up

    async function run() {
      if (!box.dataset.ready) {
        try { await start(); } catch (error) { return; }
      }
      const mine = ++generation;
      const text = input.value.toWellFormed();
      if (text.length > 20000) status.textContent = "Tokenizing\u2026"; // else no news to announce
      const started = performance.now();
      const done = await sliced(everySteps(text, allow.checked), () => mine !== generation);
      if (done === null) return;
      box.dataset.milliseconds = (performance.now() - started).toFixed(1);
      box.dataset.runs = String(Number(box.dataset.runs || 0) + 1);
      show(text, done.results, done.chatIds);
    }

    function show(text, results, chatIds) {
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
      if (status.textContent !== loaded) status.textContent = loaded;
      timing.textContent = `Tokenized in ${box.dataset.milliseconds} ms.`;
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

  // For tests and the benchmark: the box's own functions (everything is the box's own path).
  const everything = (text, allowSpecial) => finish(everySteps(text, allowSpecial));
  window.explorablesTypedText = { load, encode, chat, everything, bytesOf };

  function begin() {
    if (DATA) document.querySelectorAll(".typed-text").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", begin);
  else begin();
})();
