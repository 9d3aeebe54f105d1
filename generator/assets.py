r"""Third-party browser files, taken from installed registry packages at build time.

- Vega, Vega-Lite and vega-embed: the single-file bundle that the PyPI package
  vl-convert-python ships (it sets ``window.vegaEmbed``), cached by its version.
- iframe-worker's shim (npm package, installed by ``npm ci``): lets Material's search worker
  run on pages opened from file://. A script in each page's head (docs/overrides/main.html)
  adds it only there: over HTTP the search worker is a real worker, off the page's main thread.
- gpt-tokenizer's browser builds (npm package, installed by ``npm ci``), one classic script per
  encoding (``window.GPTTokenizer_<name>``): the tokenization page's text box adds them as script
  tags when the reader first uses it, so they work from file:// and never count in a page.
  Pinned at 2.9.0: in 3.0 to 3.4 ``dist/cl100k_base.js`` holds o200k_base's ranks.

One generated file goes with them, ``assets/tokens-data.js``: the token views' glyph table
(``GLYPHS`` in generator/pages/tokens.py, the one copy) and, for each encoding of the text box, its
script, size, and tiktoken's own special tokens and split pattern (translated to JavaScript by
``js_pattern``), so the page's JavaScript keeps no copy of either. The page splits text with
tiktoken's pattern, not gpt-tokenizer's: 2.9.0's o200k_base pattern is cl100k_base's, with the
whole pattern case-insensitive, and its ``\s`` is JavaScript's (with U+FEFF, without U+0085),
not Unicode's White_Space as in tiktoken.

Nothing is fetched from the network and nothing is copied into the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from generator.cache import Cache, code_fingerprint

ROOT = Path(__file__).resolve().parent.parent
VEGA_BUNDLE = "assets/vendor/vega-bundle.js"
IFRAME_WORKER = "assets/vendor/iframe-worker/shim.js"
IFRAME_WORKER_SOURCE = ROOT / "node_modules" / "iframe-worker" / "shim" / "index.js"
GPT_TOKENIZER_SOURCE = ROOT / "node_modules" / "gpt-tokenizer"
GPT_TOKENIZER = "assets/vendor/gpt-tokenizer"
TYPED_ENCODINGS = ("r50k_base", "cl100k_base", "o200k_base")  # the text box's, side by side
TOKENS_DATA = "assets/tokens-data.js"


class MissingAssetError(RuntimeError):
    """A third-party file the site needs is not installed."""


def vendor_files(cache: Cache) -> dict[str, bytes]:
    """Every third-party file the built site serves, by site path."""
    tokenizers = tokenizer_scripts()
    return {VEGA_BUNDLE: vega_bundle(cache), IFRAME_WORKER: iframe_worker_shim(),
            **tokenizers,
            f"{GPT_TOKENIZER}/LICENSE.txt": _npm_file(GPT_TOKENIZER_SOURCE / "LICENSE"),
            TOKENS_DATA: tokens_data(cache, tokenizers)}


def vega_bundle(cache: Cache) -> bytes:
    """vega + vega-lite + vega-embed as one classic script, from vl-convert-python."""
    try:
        import vl_convert
    except ImportError as exc:
        raise MissingAssetError(
            "vl-convert-python is not installed: run `pip install -r requirements.txt`") from exc
    return cache.blob("vega-bundle", [vl_convert.__version__],
                      lambda: vl_convert.javascript_bundle().encode())


def iframe_worker_shim() -> bytes:
    """The iframe-worker shim, from node_modules (installed by `npm ci`)."""
    if not IFRAME_WORKER_SOURCE.is_file():
        raise MissingAssetError(
            f"{IFRAME_WORKER_SOURCE.relative_to(ROOT)} is missing: run `npm ci` at the top of "
            "the checkout (it installs the iframe-worker shim that offline search needs)")
    return IFRAME_WORKER_SOURCE.read_bytes()


def tokenizer_scripts() -> dict[str, bytes]:
    """gpt-tokenizer's browser build of every encoding the text box shows, by site path."""
    return {f"{GPT_TOKENIZER}/{name}.js": _npm_file(GPT_TOKENIZER_SOURCE / "dist" / f"{name}.js")
            for name in TYPED_ENCODINGS}


def tokens_data(cache: Cache, tokenizers: dict[str, bytes]) -> bytes:
    """The generated script that hands the token views' glyphs and the text box's encodings to JS."""
    from generator.pages.tokens import GLYPHS
    from generator import encodings

    tiktoken = cache.json("tiktoken-split-and-special", [encodings.TIKTOKEN_VERSION,
                                                        code_fingerprint("generator.encodings")],
                          lambda: {name: {"special": encodings.get_encoding(name)._special_tokens,
                                          "pattern": encodings.get_encoding(name)._pat_str}
                                   for name in TYPED_ENCODINGS})
    version = json.loads((GPT_TOKENIZER_SOURCE / "package.json").read_text())["version"]
    data = {
        "glyphs": GLYPHS,
        "tokenizer": f"gpt-tokenizer {version}",
        # src is relative to the assets folder, where the page's scripts are.
        "encodings": [{"name": name, "src": f"{GPT_TOKENIZER.removeprefix('assets/')}/{name}.js",
                       "global": f"GPTTokenizer_{name}",
                       "bytes": len(tokenizers[f"{GPT_TOKENIZER}/{name}.js"]),
                       "special": tiktoken[name]["special"],
                       "pattern": js_pattern(tiktoken[name]["pattern"])} for name in TYPED_ENCODINGS],
        # A user message in ChatML, in cl100k_base with the role markers tiktoken's README adds.
        "chatml": {"encoding": "cl100k_base", "markers": encodings.CHATML_SPECIAL_TOKENS},
    }
    return ("// Generated by generator/assets.py (from generator/pages/tokens.py's GLYPHS and "
            "tiktoken's special tokens); do not edit.\n"
            f"window.explorablesTokenData = {json.dumps(data, ensure_ascii=False, sort_keys=True)};\n"
            ).encode()


def js_pattern(pattern: str) -> str:
    r"""A tiktoken split pattern (Rust regex) as the JavaScript RegExp source that splits the same
    way under the flags "gu".

    Possessive quantifiers become greedy ones (in these patterns nothing after them could take
    back what they match), an ``(?i:...)`` group spells out both cases of its letters, and
    ``\s``/``\S`` become Unicode's White_Space, which is what they mean in Rust's regex.

    Example: js_pattern(r"'(?i:[sd]|ll)| ?\p{L}++|\s") -> "'(?:[sSdDſ]|[lL][lL])| ?\p{L}+|\p{White_Space}"
    """
    if "\\\\" in pattern or "\\+" in pattern:  # an escaped backslash or plus would be misread
        raise ValueError(f"split pattern not translatable: {pattern}")
    out = re.sub(r"([+*?]|\{\d+(?:,\d*)?\})\+", r"\1", pattern)  # x++ x*+ x?+ x{1,3}+
    out = re.sub(r"\(\?i:([^()]*)\)", lambda m: "(?:" + _both_cases(m.group(1)) + ")", out)
    return out.replace("\\s", "\\p{White_Space}").replace("\\S", "\\P{White_Space}")


# Letters that Unicode's simple case folding (which Rust's (?i) uses) maps to an ASCII letter.
_FOLDS = {"s": "\u017f", "k": "\u212a"}  # long s, Kelvin sign


def _both_cases(group: str) -> str:
    """Letters of a regex fragment matched in any case: [sd] -> [sdSDſ], ll -> [lL][lL]."""
    def cases(letters: str) -> str:
        return "".join(c + c.upper() for c in letters) + "".join(_FOLDS.get(c, "") for c in letters)

    parts = re.split(r"(\[[^\]]*\])", group)
    return "".join("[" + cases(p[1:-1]) + "]" if p.startswith("[")
                   else re.sub(r"[a-z]", lambda m: "[" + cases(m.group(0)) + "]", p)
                   for p in parts)


def _npm_file(path: Path) -> bytes:
    if not path.is_file():
        raise MissingAssetError(
            f"{path.relative_to(ROOT)} is missing: run `npm ci` at the top of the checkout (it "
            "installs the browser files pinned in package.json)")
    return path.read_bytes()
