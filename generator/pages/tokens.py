"""Token views: every text of the tokenization chapter as coloured token spans, in HTML.

Each token is a ``<span data-i=ID>`` holding its text, with whitespace and invisible characters
drawn as visible glyphs in an ``<i>`` (a space as an open box, a tab as an arrow, a newline as
a return arrow, followed by a line break after the token, a format character as its code
point). A token whose bytes
are not whole UTF-8 characters (byte-level BPE split a character between tokens) shows its
bytes in hex and gets class ``partial-utf8``; a special token gets class ``special``.
``docs/assets/tokens.js`` adds the text/ids toggle, arrow-key movement between tokens, and the
line that describes the token under the pointer or the keyboard focus; without it the tokens are
still all there. ``GLYPHS`` is the one copy of the glyph table: the build hands it to that script
(and to the text box, which draws typed text the same way) in the generated
``assets/tokens-data.js`` (see generator/assets.py).

Every character that comes from a text is HTML-escaped here, so an example such as
``<script>`` reaches the reader as text. The views are handed to the page as facts, next to
the chart module's numbers.
"""

from __future__ import annotations

import html
import unicodedata

from markupsafe import Markup

from generator.sims.tokenization import TokenizationResults

# Drawn instead of these characters, inside <i>, so whitespace can be seen (the page's JavaScript
# gets this table from the build: see the module docstring).
GLYPHS = {" ": "\u2423", "\t": "\u2192", "\n": "\u21b5"}


def widgets(res: TokenizationResults) -> dict[str, Markup]:
    """The token views the prose places with {{ widget("name") }}."""
    return {"examples": token_view(res, "example"), "languages": token_view(res, "language"),
            "chat": chat_view(res)}


def token_view(res: TokenizationResults, kind: str) -> Markup:
    """Every text of one kind ("example" or "language"), one collapsible panel per text."""
    panels = []
    for t, (label, text_kind) in enumerate(zip(res.labels, res.kinds)):
        if text_kind != kind:
            continue
        counts = " \u00b7 ".join(str(len(e.ids[t])) for e in res.encoded)
        rows, seen = [], {}
        for e in res.encoded:
            ids = tuple(int(i) for i in e.ids[t])
            if ids in seen:
                rows.append(f'<p class="tokens-same">{e.encoding}: the same {len(ids)} tokens as '
                            f"{seen[ids]}</p>")
                continue
            seen[ids] = e.encoding
            rows.append(token_row(e.encoding, ids, e.pieces))
        opened = " open" if not panels else ""
        panels.append(f"<details{opened}><summary>{html.escape(label)} "
                      f'<span class="tokens-counts">({counts} tokens)</span></summary>'
                      + "".join(rows) + "</details>")
    legend = " \u00b7 ".join(e.encoding for e in res.encoded)
    return _view(f"tokens-{kind}", f"Token counts in brackets: {legend}.", "".join(panels))


def chat_view(res: TokenizationResults) -> Markup:
    """The ChatML prompt's tokens, its role markers shown as the special tokens they are."""
    chat = res.chat
    row = token_row(chat.encoding, [int(i) for i in chat.ids], chat.pieces, chat.special_ids)
    return _view("tokens-chat", f"{len(chat.ids)} tokens in {chat.encoding} with ChatML's markers.",
                 f'<div class="tokens-panel">{row}</div>')


def token_row(encoding: str, ids, pieces: dict[str, str], special=()) -> str:
    """One encoding's tokens of one text: a label, then one span per token."""
    spans = [token_span(i, bytes.fromhex(pieces[str(i)]), i in special, first=(n == 0))
             for n, i in enumerate(ids)]
    return (f'<div class="tokens-row"><span class="tokens-encoding">{html.escape(encoding)} '
            f"\u00b7 {len(spans)}</span>"
            f'<span class="tokens-seq" data-encoding="{html.escape(encoding)}">{"".join(spans)}'
            "</span></div>")


def token_span(token_id: int, data: bytes, special: bool = False, first: bool = False) -> str:
    """One token: its text with visible whitespace, or its bytes in hex if it splits a character.

    Example: token_span(220, b" ") -> '<span data-i=220><i>␣</i></span>'
    """
    tab = " tabindex=0" if first else ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f'<span class="partial-utf8" data-i={token_id}{tab}>{data.hex(" ")}</span>'
    cls = ' class="special"' if special else ""
    # Line breaks go after the token's box, so the next token starts on a new line.
    return f"<span{cls} data-i={token_id}{tab}>{visible(text)}</span>" + "<br>" * text.count("\n")


def visible(text: str) -> str:
    """Escaped text with whitespace and invisible characters drawn as glyphs."""
    out = []
    for ch in text:
        if ch in GLYPHS:
            out.append(f"<i>{GLYPHS[ch]}</i>")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") or ch.isspace():
            out.append(f"<i>U+{ord(ch):04X}</i>")
        else:
            out.append(html.escape(ch))
    return "".join(out)


# A view of this many spans or more is skipped by the browser's rendering while out of view
# (`.tokens-long` in docs/assets/tokens.css): a chart's repaint elsewhere on the page then does
# not walk its thousands of elements every frame.
LONG_VIEW = 500


def _view(view_id: str, note: str, body: str) -> Markup:
    mode = (f'<fieldset class="tokens-mode"><legend>Show tokens as</legend>'
            f'<label><input type="radio" name="{view_id}-mode" value="text" checked> text</label>'
            f'<label><input type="radio" name="{view_id}-mode" value="ids"> ids</label></fieldset>')
    long = " tokens-long" if body.count("<span") >= LONG_VIEW else ""
    return Markup(f'\n\n<div class="tokens{long}" id="{view_id}">{mode}'
                  f'<p class="tokens-note">{html.escape(note)} Hover over a token or focus it '
                  f"(Tab, then the arrow keys) to see its id, bytes and position.</p>"
                  f"{body}</div>\n\n")
