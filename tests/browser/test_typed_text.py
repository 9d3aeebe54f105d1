"""The tokenization page's text box in Chromium: exact to tiktoken on a whole corpus, lazy,
offline, safe with markup, usable by keyboard, and kept in the link.

The corpus goes to the page in batches as UTF-16 code units (so lone surrogates survive the trip
unchanged) and every id the in-page tokenizer returns is compared with Python's tiktoken on the
same string, read as plain text and with special tokens allowed."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from generator.grids import TokenizationGrid
from tests.helpers import tokenization_inputs
from generator import encodings
from generator.sims.tokenization import IM_END, IM_START, chatml
from tests.browser.pages import open_page

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent.parent
ENCODINGS = ("r50k_base", "cl100k_base", "o200k_base")
BATCH = 200  # strings per page.evaluate
SEED = 14
N_RANDOM = 1200
FRAGMENT_MAX = 2000  # characters kept in the URL fragment, as typed-text.js says

# Strings from tiktoken's own test suite (tests/test_encoding.py: its regex, repetition and
# special-token cases), and a few in their spirit.
TIKTOKEN_CASES = (
    "", "hello world", "hello <|endoftext|>", "<|endoftext|>", "<|endoftext|> hello",
    " \x850", "rer", "'rer", "today\n ", "today\n \n", "today\n  \n", "0", "00", "000", "0000",
    "00000", "000000", "0000000", "00000000", "000000000", "we need to increase", "🍴", "🍴🍴",
    "i'm   🫡   ", "\u00a0\u00a0\u00a0", "Hello, 👋 world!", "hello\r\nworld",
    *(c * 10_000 for c in ("^", "0", "a", "'s", " ", "\n")),
    *(" " + c * 10_000 for c in ("^", "0", "a", "'s", " ", "\n")),
    *(c * 10_000 + " " for c in ("^", "0", "a", "'s", " ", "\n")),
)

CODE = (
    'import numpy as np\n\ndef softmax(z):  # [..., n] -> [..., n]\n    e = np.exp(z - z.max(axis=-1, '
    'keepdims=True))\n    return e / e.sum(axis=-1, keepdims=True)\n',
    "fn main() {\n\tlet v: Vec<u32> = (0..10).map(|x| x * x).collect();\n\tprintln!(\"{:?}\", v);\n}\n",
    "SELECT id, name FROM users WHERE email LIKE '%@example.com' ORDER BY 2 DESC LIMIT 10;",
    "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"></head><body><p class=x>&nbsp;</p></body></html>",
    '{"key": [1, 2.5e-3, null, true], "nested": {"a\\u00e9": "\\n"}}',
    "    if (x != 0x7fffffff && y >= -1.0e10) { return a[i++] <<= 3; }  // comment\r\n",
)

EMOJI = (
    "👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🧑🏿‍🦱 👍🏻👍🏼👍🏽👍🏾👍🏿 🇺🇳🇯🇵 ❤️ ☺︎ 1️⃣ #️⃣",
    "🫶🏽🫠🪿 🧔‍♀️ 👁️‍🗨️ 🤷‍♂️🤷🏾‍♀️", "\U0001f469\u200d\u2764\ufe0f\u200d\U0001f48b\u200d\U0001f468",
)

WHITESPACE = (
    " ", "  ", "   hello", "hello   ", "\t\t\tx", "\n\n\n", "a \n b", " \t \n \r\n ", "x\u3000y\u00a0z",
    "line\u2028next\u2029para", "a" + " " * 30 + "b", "\n" * 7 + " " * 5 + "end", "\u200b\u200c\u200d\ufeff",
    "\ufeffusing System;", "\ufeff\n\n", "x\ufeff#include", "\ufeff//",
)

# Contractions in any case: cl100k_base and o200k_base read them case-insensitively, as Unicode
# folds case (the long s folds to s).
CONTRACTIONS = ("it's IT'S it'S it'ſ", "I'LL we'Ve they'rE don'T I'M she'D", "'s 's's ''s")

SPECIAL_NAMES = (
    "<|endoftext|><|endoftext|>", "a<|endoftext|>b<|fim_prefix|>c<|fim_middle|>d<|fim_suffix|>e",
    "<|endofprompt|> then <|im_start|>user\nhi<|im_end|>", "<|endoftext|", "|endoftext|>", "<|<|endoftext|>|>",
)


def tiktoken_plans() -> list[str]:
    """The samples of gpt-tokenizer's TestPlans.txt (its expectations were made with tiktoken)."""
    text = (ROOT / "node_modules" / "gpt-tokenizer" / "data" / "TestPlans.txt").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"^Sample: (.*)$", text, flags=re.M)))


def random_strings(n: int, seed: int) -> list[str]:
    """Seeded random Unicode: every plane, scripts, marks, emoji parts, whitespace, lone surrogates."""
    rng = random.Random(seed)
    pools = [
        (30, lambda: chr(rng.randint(0x20, 0x7e))),
        (8, lambda: rng.choice(" \t\n\r\x0b\x0c\x85\u00a0\u1680\u2000\u200a\u2028\u3000")),
        (6, lambda: rng.choice(("'s", "'t", "'re", "'ll", "'VE", "'D", "123", "4567", " 89"))),
        (6, lambda: chr(rng.randint(0xa0, 0x24f))),  # Latin-1 and Latin Extended
        (4, lambda: chr(rng.randint(0x370, 0x52f))),  # Greek, Cyrillic
        (4, lambda: chr(rng.randint(0x300, 0x36f))),  # combining marks
        (4, lambda: chr(rng.choice((rng.randint(0x590, 0x6ff), rng.randint(0x900, 0xdff))))),  # RTL, Indic
        (6, lambda: chr(rng.choice((rng.randint(0x4e00, 0x9fff), rng.randint(0xac00, 0xd7a3),
                                    rng.randint(0x3040, 0x30ff), rng.randint(0xe00, 0xe7f))))),
        (6, lambda: chr(rng.randint(0x1f300, 0x1faff))),  # emoji
        (3, lambda: rng.choice(("\u200d", "\ufe0f", "\ufe0e", "\u20e3", *map(chr, range(0x1f3fb, 0x1f400))))),
        (4, lambda: chr(rng.randint(0xd800, 0xdfff))),  # a surrogate: mostly lone, now and then a pair
        (3, lambda: chr(rng.randint(0, 0x10ffff))),  # anything at all
        (2, lambda: rng.choice(("<|endoftext|>", "<|fim_prefix|>", "<|endofprompt|>", "<|", "|>"))),
    ]
    weights = [w for w, _ in pools]
    out = []
    for _ in range(n):
        length = rng.choice((1, 2, 3, rng.randint(1, 12), rng.randint(1, 60)))
        out.append("".join(rng.choices(pools, weights)[0][1]() for _ in range(length)))
    return out


def corpus() -> list[str]:
    grid, texts = TokenizationGrid(), tokenization_inputs(TokenizationGrid())
    site = [t for _, t in grid.examples + texts.languages] + [texts.bpe_text] + [c for _, c in grid.chat]
    strings = [*site, chatml(grid.chat), *TIKTOKEN_CASES, *tiktoken_plans(), *CODE, *EMOJI,
               *WHITESPACE, *CONTRACTIONS, *SPECIAL_NAMES, *random_strings(N_RANDOM, SEED)]
    return list(dict.fromkeys(strings))


def utf16(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "little") for i in range(0, len(data), 2)]


RUN = """async ([batch, allow]) => {
  await window.explorablesTypedText.load();
  const text = (units) => { let s = ""; for (let i = 0; i < units.length; i += 4096)
    s += String.fromCharCode(...units.slice(i, i + 4096)); return s; };
  return batch.map((units) => {
    const { results, chatIds } = window.explorablesTypedText.everything(text(units), allow);
    return { ...Object.fromEntries(results.map((r) => [r.name, r.ids])), chat: chatIds };
  });
}"""


@pytest.fixture(scope="module")
def typed(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    visit.page.evaluate("() => window.explorablesTypedText.load()")
    yield visit
    visit.page.context.close()


def in_page(page, strings, allow):
    out = []
    for start in range(0, len(strings), BATCH):
        out += page.evaluate(RUN, [[utf16(s) for s in strings[start:start + BATCH]], allow])
    return out


def test_the_corpus_is_what_the_issue_asks_for():
    strings = corpus()
    lone = [s for s in strings if re.search("[\ud800-\udfff]", s)]
    assert len(random_strings(N_RANDOM, SEED)) >= 1000 and len(lone) > 100
    assert all(t in strings for _, t in tokenization_inputs(TokenizationGrid()).languages)
    assert len(tiktoken_plans()) > 50


def encoded(enc, text, allow):
    return enc.encode(text, allowed_special="all") if allow else enc.encode(text, disallowed_special=())


def chatml_ids(text, allow):
    """The text as a ChatML user message, by tiktoken: the markers special, the text per `allow`."""
    enc = encodings.get_chatml_encoding()
    start, end = enc.encode_single_token(IM_START), enc.encode_single_token(IM_END)
    return [start, *encoded(enc, "user\n" + text, allow), end, *enc.encode("\n"), start, *enc.encode("assistant\n")]


@pytest.mark.parametrize("allow", [False, True], ids=["special-as-text", "special-allowed"])
def test_every_id_of_the_corpus_matches_tiktoken(typed, allow):
    """All three encodings and the ChatML row, computed as the box computes them."""
    strings = corpus()
    got = in_page(typed.page, strings, allow)
    mismatches = []
    for name in ENCODINGS:
        enc = encodings.get_encoding(name)
        for text, ids in zip(strings, got):
            expected = encoded(enc, text, allow)
            if ids[name] != expected:
                mismatches.append((name, text[:80], ids[name][:20], expected[:20]))
    for text, ids in zip(strings, got):
        if ids["chat"] != chatml_ids(text, allow):
            mismatches.append(("ChatML", text[:80], ids["chat"][:20], chatml_ids(text, allow)[:20]))
    assert mismatches == [], f"{len(mismatches)} mismatches, first: {mismatches[:3]}"
    assert typed.errors == []


@pytest.mark.parametrize("allow", [False, True], ids=["special-as-text", "special-allowed"])
def test_the_chatml_row_is_what_tiktoken_makes_of_the_template(typed, allow):
    enc = encodings.get_chatml_encoding()
    grid = TokenizationGrid()
    strings = ([t for _, t in grid.examples] + list(SPECIAL_NAMES)
               + ["", "\n", "x", " leading", "\tx", "\u3000x", "trailing\n\n", "<|endoftext|>x", "<|im_end|> x"])
    got = typed.page.evaluate("""([texts, allow]) => texts.map((t) => [window.explorablesTypedText.chat(t, allow),
        window.explorablesTypedText.everything(t, allow).chatIds])""", [strings, allow])
    for text, (alone, in_box) in zip(strings, got):
        assert alone == in_box == chatml_ids(text, allow), text
        if not allow and IM_START not in text and IM_END not in text:
            # the same prompt as the page's own ChatML view builds
            assert alone == enc.encode(chatml([("user", text)]), allowed_special={IM_START, IM_END},
                                       disallowed_special=())


def test_every_token_shows_tiktokens_bytes(typed):
    texts = [t for _, t in TokenizationGrid().examples + tokenization_inputs(TokenizationGrid()).languages] + list(EMOJI)
    for name in ENCODINGS:
        enc = encodings.get_encoding(name)
        ids = sorted({i for t in texts for i in enc.encode(t, allowed_special="all")} | set(enc._special_tokens.values()))
        got = typed.page.evaluate("""([name, ids]) => ids.map((id) => Array.from(
            window.explorablesTypedText.bytesOf(name, id), (b) => b.toString(16).padStart(2, "0")).join(""))""",
                                  [name, ids])
        assert got == [enc.decode_single_token_bytes(i).hex() for i in ids], name


def box_text(page, encoding):
    """A row's text as the reader sees it, glyphs turned back into characters."""
    return page.locator(f'#tokens-typed .tokens-seq[data-encoding="{encoding}"]').first.evaluate(
        "el => Array.from(el.querySelectorAll(':scope > span')).map(s => s.textContent).join('')"
        ".replaceAll('\u2423', ' ').replaceAll('\u21b5', '\\n').replaceAll('\u2192', '\\t')")


def row_ids(page, encoding, nth=0):
    """The ids of a row's tokens, as the page shows them."""
    row = page.locator(f'#tokens-typed .tokens-seq[data-encoding="{encoding}"]').nth(nth)
    return [int(i) for i in row.locator(":scope > span").evaluate_all("els => els.map(e => e.dataset.i)")]


def type_into_box(page, text, *, paste=False):
    box = page.locator(".typed-text")
    before = box.get_attribute("data-runs")
    area = page.locator("#typed-text-input")
    if paste:
        area.fill(text)
    else:
        area.focus()
        page.keyboard.type(text)
    page.wait_for_function("""([before, text]) => {
        const box = document.querySelector('.typed-text');
        return box.dataset.runs !== undefined && box.dataset.runs !== before
            && box.querySelector('textarea').value === text && box.querySelector('.typed-text-rows').children.length;
    }""", arg=[before, text])


@pytest.mark.parametrize("via", ["file", "http"])
def test_tokenizers_load_on_first_use_from_the_site_itself(browser, site, site_url, via):
    visit = open_page(browser, site.as_uri() if via == "file" else site_url, "tokenization.html")
    page = visit.page
    vendor = lambda: [u for u in visit.requests if "gpt-tokenizer" in u]  # noqa: E731
    assert vendor() == []  # nothing loaded with the page
    status = page.locator(".typed-text-status")
    assert re.search(r"\(3\.\d MB: r50k_base 0\.5 MB, cl100k_base 1\.0 MB, o200k_base 2\.1 MB\)", status.text_content())
    assert page.locator("#typed-text-input").evaluate("el => el.labels[0].textContent") == "Your text"
    page.locator("#typed-text-input").focus()
    page.wait_for_function("() => document.querySelector('.typed-text').dataset.ready === 'true'")
    assert sorted(u.rsplit("/", 1)[-1] for u in vendor()) == ["cl100k_base.js", "o200k_base.js", "r50k_base.js"]
    assert "Tokenizers loaded" in status.text_content()
    type_into_box(page, "hello world")
    assert page.locator(".typed-text-summary").text_content().startswith(
        "11 characters: r50k_base 2 tokens, cl100k_base 2 tokens, o200k_base 2 tokens")
    assert "Tokenizers loaded" in status.text_content()  # the live region says no more
    assert re.fullmatch(r"Tokenized in [0-9.]+ ms\.", page.locator(".typed-text-timing").text_content())
    assert visit.errors == [] and visit.external_requests() == []
    page.context.close()


def test_typed_markup_is_shown_as_text_and_never_runs(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for text in ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
                 '"><svg onload=alert(2)>&lt;b&gt;'):
        type_into_box(page, text, paste=True)
        for name in ENCODINGS:
            assert box_text(page, name) == text
    page.wait_for_timeout(300)
    assert page.locator(".typed-text img, .typed-text script, .typed-text svg").count() == 0
    assert dialogs == [] and visit.errors == []
    page.context.close()


def test_special_tokens_are_text_unless_allowed(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    type_into_box(page, "<|endoftext|>", paste=True)
    row = page.locator('#tokens-typed .tokens-seq[data-encoding="cl100k_base"]').first
    as_text = encodings.get_encoding("cl100k_base").encode("<|endoftext|>", disallowed_special=())
    assert row_ids(page, "cl100k_base") == as_text
    page.locator(".typed-text-special").check()
    page.wait_for_function("""() => document.querySelector(
        '#tokens-typed .tokens-seq[data-encoding="cl100k_base"]').children.length === 1""")
    token = row.locator(":scope > span")
    assert token.get_attribute("data-i") == "100257" and token.get_attribute("class") == "special"
    assert "special=1" in page.evaluate("location.hash")
    chat_row = page.locator('#tokens-typed .tokens-seq[data-encoding="cl100k_base"]').nth(1)
    assert chat_row.locator(".special").count() == 4  # im_start, endoftext, im_end, im_start
    assert visit.errors == []
    page.context.close()


def test_works_by_keyboard_and_announces_the_counts(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    assert page.locator(".typed-text-summary").get_attribute("aria-live") == "polite"
    assert page.locator(".typed-text-status").get_attribute("role") == "status"
    page.locator("#typed-text-input").focus()
    page.keyboard.type("Hi there")
    page.wait_for_function("() => document.querySelector('.typed-text-summary').textContent.includes('8 characters')")
    # Tab leaves the box for its controls, then reaches the tokens; arrow keys move between them.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('typed-text-special')")
    page.keyboard.press("Space")
    assert page.locator(".typed-text-special").is_checked()
    page.locator('#tokens-typed .tokens-seq[data-encoding="r50k_base"] > span').first.focus()
    page.keyboard.press("ArrowRight")
    info = page.locator("#tokens-typed .tokens-info").text_content()
    assert info == "r50k_base: position 1 of 2, id 612, 6 bytes: 20 74 68 65 72 65"
    page.locator("#tokens-typed .tokens-mode input[value=text]").focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.querySelector('#tokens-typed').classList.contains('ids')")
    assert visit.errors == []
    page.context.close()


def test_the_link_keeps_the_text_up_to_its_limit(browser, site):
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    text = "Grüße, 世界 🦜\n  def f(x): return x  # 100%"
    type_into_box(page, text, paste=True)
    link = page.url
    assert "#text=" in link
    page.context.close()

    again = open_page(browser, link.split("/tokenization.html")[0], "tokenization.html" + link.split("tokenization.html")[1])
    page = again.page
    page.wait_for_function("() => document.querySelector('.typed-text').dataset.runs")
    assert page.locator("#typed-text-input").input_value() == text
    assert row_ids(page, "o200k_base") == encodings.get_encoding("o200k_base").encode(text)
    long = "x" * (FRAGMENT_MAX + 1)
    type_into_box(page, long, paste=True)
    assert "#text=" not in page.url
    assert "not kept in the link" in page.locator(".typed-text-stored").text_content()
    type_into_box(page, "x" * FRAGMENT_MAX, paste=True)
    assert "#text=" in page.url
    assert again.errors == []
    page.context.close()


def pasted_text(n_bytes: int = 100_000) -> str:
    """The chapter's texts (prose, code, emoji, every UDHR script, the chat) over and over, cut
    to n_bytes of UTF-8."""
    grid = TokenizationGrid()
    languages = tokenization_inputs(grid).languages
    text = "\n\n".join(t for _, t in grid.examples + languages + grid.chat)
    text = text * (n_bytes // len(text.encode()) + 1)
    return text.encode()[:n_bytes].decode(errors="ignore")


def paste_timing(browser, site: Path) -> tuple[float, float, int]:
    """On a fresh page: ms from the first focus until the tokenizers are ready, ms to tokenize a
    100 KB paste in the box (all three encodings and the ChatML row), tokens shown in a row."""
    visit = open_page(browser, site.as_uri(), "tokenization.html")
    page = visit.page
    page.locator("#typed-text-input").focus()
    loaded = page.evaluate("""async () => { const t = performance.now(); await window.explorablesTypedText.load();
        return performance.now() - t; }""")
    page.wait_for_function("() => document.querySelector('.typed-text').dataset.ready === 'true'")
    type_into_box(page, pasted_text(), paste=True)
    ms = float(page.locator(".typed-text").get_attribute("data-milliseconds"))
    shown = page.locator('#tokens-typed .tokens-seq[data-encoding="r50k_base"]').first.locator(":scope > span").count()
    assert visit.errors == [], visit.errors
    page.context.close()
    return loaded, ms, shown


def test_100_kb_pasted_tokenizes_in_200_ms(browser, site):
    # Fresh pages until one makes it, at most five: wall-clock time on a shared machine only
    # ever comes out slower than the code is, never faster.
    timings = []
    while len(timings) < 5 and not any(ms <= 200 for _, ms, _ in timings):
        timings.append(paste_timing(browser, site))
    assert min(ms for _, ms, _ in timings) <= 200, timings
    assert all(shown == 2000 for _, _, shown in timings)  # each row draws its first 2,000 tokens
