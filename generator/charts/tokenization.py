"""Charts of the "Tokenization" chapter: one function per chart, results in, alt.Chart out."""

from __future__ import annotations

import json

import altair as alt
import numpy as np

from generator.charts.common import OKABE_ITO, WIDTH, significant, static_position, visible_token
from generator.sims.tokenization import ENDOFTEXT, TokenizationResults

NEWEST, ODD = "#D55E00", "#0072B2"
# Token shading in the BPE chart: alternate tokens in blue and yellow, so that each shows where
# it ends and the next begins, the ones the merge just made in two purples (two new tokens can
# meet); light enough for black letters in either palette (Vega's dark theme leaves text marks
# black).
SHADES = {"even": "#B3DDF5", "odd": "#F5ECA0", "newest": "#CC79A7", "newest, even": "#E8B9D4"}
MATRIX_CELLS = 32  # the score matrix is drawn with at most this many cells a side


def encoding_names(res: TokenizationResults) -> list[str]:
    return [e.encoding for e in res.encoded]


def count_rows(res: TokenizationResults) -> list[dict]:
    """One row per (text, encoding): tokens, characters, UTF-8 bytes and their ratios."""
    rows = []
    for e in res.encoded:
        for label, text, ids in zip(res.labels, res.texts, e.ids):
            rows.append({"text": label, "encoding": e.encoding,
                         "tokens": int(len(ids)), "characters": len(text),
                         "UTF-8 bytes": len(text.encode()),
                         "characters per token": significant(len(text) / len(ids), 4)})
    return rows


def counts(res: TokenizationResults) -> alt.HConcatChart:
    """Tokens per text and characters per token, for every encoding."""
    names = encoding_names(res)
    base = alt.Chart(alt.Data(values=count_rows(res)))
    y = alt.Y("text:N", sort=list(res.labels), title=None)
    color = alt.Color("encoding:N", sort=names, scale=alt.Scale(range=OKABE_ITO),
                      legend=alt.Legend(orient="top", title="encoding"))
    tooltip = [alt.Tooltip("text:N"), alt.Tooltip("encoding:N"), alt.Tooltip("tokens:Q"),
               alt.Tooltip("characters:Q"), alt.Tooltip("UTF-8 bytes:Q"),
               alt.Tooltip("characters per token:Q", format=".3f")]
    panels = [
        base.mark_bar().encode(
            x=alt.X(f"{field}:Q", title=field), y=y if i == 0 else y.axis(None),
            yOffset=alt.YOffset("encoding:N", sort=names), color=color, tooltip=tooltip,
        ).properties(width=WIDTH // 2 - 40, height=alt.Step(5))
        for i, field in enumerate(("tokens", "characters per token"))
    ]
    return alt.hconcat(*panels, spacing=12).properties(
        title="Tokens per text (left) and characters per token (right), by encoding")


def language_cost(res: TokenizationResults) -> alt.LayerChart:
    """How many times the reference language's token count the same sentence costs."""
    names = encoding_names(res)
    ref = res.labels.index(res.reference_language)
    rows = []
    for e in res.encoded:
        for label, kind, ids in zip(res.labels, res.kinds, e.ids):
            if kind == "language":
                rows.append({"language": label, "encoding": e.encoding, "tokens": int(len(ids)),
                             f"{res.reference_language} tokens": int(len(e.ids[ref])),
                             "times as many tokens": significant(len(ids) / len(e.ids[ref]), 4)})
    languages = [r["language"] for r in rows if r["encoding"] == names[0]]
    base = alt.Chart(alt.Data(values=rows))
    bars = base.mark_bar().encode(
        x=alt.X("times as many tokens:Q",
                title=f"tokens for the same sentence, as a multiple of {res.reference_language}"),
        y=alt.Y("language:N", sort=languages, title=None),
        yOffset=alt.YOffset("encoding:N", sort=names),
        color=alt.Color("encoding:N", sort=names, scale=alt.Scale(range=OKABE_ITO),
                        legend=alt.Legend(orient="top", title="encoding")),
        tooltip=[alt.Tooltip("language:N"), alt.Tooltip("encoding:N"), alt.Tooltip("tokens:Q"),
                 alt.Tooltip(f"{res.reference_language} tokens:Q"),
                 alt.Tooltip("times as many tokens:Q", format=".3f")],
    )
    one = alt.Chart(alt.Data(values=[{"_x": 1}])).mark_rule(strokeDash=[4, 3]).encode(x="_x:Q")
    return alt.layer(bars, one).properties(
        width=WIDTH, height=alt.Step(5),
        title=f"The same sentence in {len(languages)} languages: cost relative to "
              f"{res.reference_language} (dashed line = 1\u00d7)")


def vocab_size(res: TokenizationResults) -> alt.LayerChart:
    """Tokens each language needs against the encoding's vocabulary size."""
    rows = [{"language": label, "encoding": e.encoding, "vocabulary size": e.n_vocab,
             "tokens": int(len(ids))}
            for e in res.encoded for label, kind, ids in zip(res.labels, res.kinds, e.ids)
            if kind == "language"]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("vocabulary size:Q", scale=alt.Scale(type="log", domain=[40_000, 250_000]),
                axis=alt.Axis(values=sorted({e.n_vocab for e in res.encoded}), format=","),
                title="vocabulary size (log scale)"),
        y=alt.Y("tokens:Q", title="tokens for the sentence"),
        detail="language:N",
    )
    pick = alt.selection_point(fields=["language"], on="pointerover", clear="pointerout",
                               empty=False)
    lines = base.mark_line(point=True).encode(
        color=alt.condition(pick, alt.value(NEWEST), alt.value(ODD)),
        strokeWidth=alt.condition(pick, alt.value(3), alt.value(1.5)),
        tooltip=[alt.Tooltip("language:N"), alt.Tooltip("encoding:N"),
                 alt.Tooltip("vocabulary size:Q", format=","), alt.Tooltip("tokens:Q")],
    ).add_params(pick)
    # Labels at the smallest vocabulary, where the languages are furthest apart.
    smallest = min(e.n_vocab for e in res.encoded)
    labels = base.transform_filter(f"datum['vocabulary size'] == {smallest}").mark_text(
        align="right", dx=-8, fontSize=11, fontWeight="bold").encode(text="language:N")
    return alt.layer(lines, labels).properties(
        width=WIDTH - 80, height=360,
        title="Bigger vocabularies shorten every language, some far more than others")


def special_tokens(res: TokenizationResults) -> alt.HConcatChart:
    """<|endoftext|> typed as text against the special token; a chat's markers against content."""
    eot = [{"encoding": e.encoding, "written as": w, "tokens": n}
           for e in res.encoded
           for w, n in (("plain text", int(len(e.endoftext_as_text))), ("special token", 1))]
    left = alt.Chart(alt.Data(values=eot)).mark_bar().encode(
        x=alt.X("tokens:Q", title="tokens"),
        y=alt.Y("encoding:N", sort=encoding_names(res), title=None),
        yOffset=alt.YOffset("written as:N"),
        color=alt.Color("written as:N", scale=alt.Scale(range=[OKABE_ITO[1], OKABE_ITO[2]]),
                        legend=alt.Legend(orient="top", title="<|endoftext|> as")),
        tooltip=["encoding:N", "written as:N", "tokens:Q"],
    ).properties(width=180, height=alt.Step(12), title=f"The same {len(ENDOFTEXT)} characters")
    chat = res.chat
    parts = []
    for role, content, total in zip(chat.roles, chat.content_tokens.tolist(), chat.message_tokens.tolist()):
        parts += [{"part": f"{role} message", "tokens": content, "kind": "content"},
                  {"part": f"{role} message", "tokens": total - content, "kind": "markers and role"}]
    parts.append({"part": "reply prefix", "tokens": chat.reply_prefix_tokens,
                  "kind": "markers and role"})
    right = alt.Chart(alt.Data(values=parts)).mark_bar().encode(
        x=alt.X("sum(tokens):Q", title="tokens"),
        y=alt.Y("part:N", sort=list(dict.fromkeys(p["part"] for p in parts)), title=None),
        color=alt.Color("kind:N", sort=["content", "markers and role"],
                        scale=alt.Scale(range=[OKABE_ITO[0], OKABE_ITO[5]]),
                        legend=alt.Legend(orient="top", title=None)),
        tooltip=["part:N", "kind:N", "tokens:Q"],
    ).properties(width=240, height=alt.Step(24),
                 title=f"A ChatML prompt in {chat.encoding}: {int(chat.ids.size)} tokens")
    return alt.hconcat(left, right, spacing=40).resolve_scale(color="independent").properties(
        title="What special tokens add: <|endoftext|>, and a chat template's markers")


def text_lines(chart: alt.Chart, width: int, *, font_size: int = 12, order: list[str] | None = None,
               order_field: str = "") -> alt.Chart:
    """Each row's `_line` drawn as a line of text in the page's text colour, in `order` of
    `order_field` if given.

    The lines are the labels of an axis with invisible marks: Vega's dark theme colours axis
    labels but leaves text marks black.
    """
    sort = None
    if order is not None:
        chart = chart.transform_calculate(_order=f"indexof({json.dumps(order)}, datum['{order_field}'])")
        sort = alt.EncodingSortField(field="_order", op="min")
    return chart.mark_point(opacity=0).encode(
        y=alt.Y("_line:N", sort=sort, title=None, axis=alt.Axis(
            orient="left", domain=False, ticks=False, grid=False, labelAlign="left",
            labelPadding=0, labelLimit=width, labelFontSize=font_size)),
    ).properties(width=width, height=alt.Step(font_size + 10))


def slider_rule(expr: str, field: str) -> alt.Chart:
    """A vertical rule at x = expr (a slider's value), to layer over a chart whose x is `field`."""
    return alt.Chart(alt.Data(values=[{}])).transform_calculate(**{field: expr}).mark_rule(
        color=NEWEST, strokeWidth=2, clip=True).encode(x=f"{field}:Q")


# ---------------------------------------------------------------------------------------------
# BPE step by step


def wrap_lines(text: str, width: int) -> list[str]:
    """text cut at spaces into lines of about `width` characters; joined, they give text back."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = ""
        line += word + " "
    lines.append(line[:-1])
    return lines


def merge_rows(res: TokenizationResults) -> list[dict]:
    """Step 0 (bytes only) and every merge: the pair, the new token, the text's length after."""
    b = res.bpe
    piece = {int(k): bytes.fromhex(v).decode("utf-8", "replace") for k, v in b.pieces.items()}
    rows = [{"step": 0, "merged": "", "count": None, "tokens in text": int(b.tokens[0])}]
    for k, ((left, right), count) in enumerate(zip(b.merges, b.pair_counts), start=1):
        rows.append({"step": k,
                     "merged": f"{visible_token(piece[int(left)])} + {visible_token(piece[int(right)])}"
                               f" \u2192 {visible_token(piece[256 + k - 1])}",
                     "count": int(count), "tokens in text": int(b.tokens[k])})
    return rows


def bpe_steps(res: TokenizationResults, width: int = 64) -> alt.VConcatChart:
    """The training text's tokens after `step` merges, the merge made at that step, and the curve."""
    b = res.bpe
    n = len(b.merges)
    step = alt.param(name="step", value=min(10, n),
                     bind=alt.binding_range(min=0, max=n, step=1, name="merges learned "))
    lines, start = [], 0
    for number, line in enumerate(wrap_lines(b.text, width)):
        lines.append({"paragraph": line, "_line": number, "_start": start,
                      "_joined": b.joined_at[start:start + len(line)].tolist(),
                      "_made": [list(m) for m in b.made_at[start:start + len(line)]]})
        start += len(line)
    # One row per byte, made in the browser: the chart carries the paragraph once, as lines.
    # The bytes' glyphs depend on no control, so their text marks are made once; the boxes are
    # the only part a change of step runs again: a running count of token starts in the bytes'
    # own order (the flatten's: no sort), and whether the byte's token is the newest read from
    # the steps that made it (`_made`, no grouping). Dense marks (a box and a glyph per byte)
    # carry no ARIA description: the chart is a canvas, named as a whole, and its data table
    # reads out the bytes.
    paragraph = alt.NamedData("paragraph")

    def bytes_of(chart: alt.Chart) -> alt.Chart:
        return chart.transform_calculate(
            _char="split(datum.paragraph, '')", _col="sequence(0, length(datum.paragraph))",
        ).transform_flatten(["_char", "_joined", "_made", "_col"]).transform_calculate(
            _i="datum._start + datum._col",
            _glyph="datum._char == ' ' ? '\u2423' : datum._char")

    x = alt.X("_col:O", axis=None, scale=alt.Scale(paddingInner=0))
    y = alt.Y("_line:O", axis=None, scale=alt.Scale(paddingInner=0.25))
    boxes = bytes_of(alt.Chart(paragraph)).transform_calculate(
        _begins="datum._joined < 0 || datum._joined > step ? 1 : 0",
    ).transform_window(_token="sum(_begins)", frame=[None, 0]).transform_calculate(
        _shade="(indexof(datum._made, step) >= 0 ? 'newest' + (datum._token % 2 ? '' : ', even') "
               ": datum._token % 2 ? 'odd' : 'even')",
    ).mark_rect(aria=False).encode(
        x=x, y=y, color=alt.Color("_shade:N", scale=alt.Scale(
            domain=list(SHADES), range=list(SHADES.values())), legend=None),
        tooltip=[alt.Tooltip("_glyph:N", title="byte"), alt.Tooltip("_token:O", title="token number")],
    ).properties(name="bpe_boxes")
    chars = bytes_of(alt.Chart(paragraph)).mark_text(
        fontSize=12, font="monospace", color="black", aria=False).encode(x=x, y=y, text="_glyph:N")
    view = alt.layer(boxes, chars).properties(
        width=width * 10, height=len(lines) * 22,
        title={"text": {"expr": "'The paragraph\u2019s tokens after ' + step + ' merges "
                                "(purple: the tokens this merge made)'"}},
    )
    info = text_lines(alt.Chart(alt.NamedData("merges")).transform_filter(
        "datum.step == step").transform_calculate(
        _line="datum.step == 0 ? 'No merges yet: ' + datum['tokens in text'] + ' bytes, one token each'"
              " : 'Merge ' + datum.step + ': ' + datum.merged + '  (pair seen ' + datum.count + "
              "' times); the text is now ' + datum['tokens in text'] + ' tokens'"),
        width * 10, font_size=13)
    curve = alt.Chart(alt.NamedData("merges")).mark_line(point=True).encode(
        x=alt.X("step:Q", title="merges learned (vocabulary size \u2212 256)"),
        y=alt.Y("tokens in text:Q", title="tokens in the text", scale=alt.Scale(zero=True)),
        tooltip=["step:Q", "merged:N", "count:Q", "tokens in text:Q"],
    )
    marker = slider_rule("step", "step")
    return alt.vconcat(info, view, alt.layer(curve, marker).properties(width=width * 10, height=160)
                       ).add_params(step).properties(
        title="A byte-level BPE learning merges on one paragraph",
        datasets={"merges": merge_rows(res), "paragraph": lines},
        # Each byte's box stays where it is at every step (its place reads the byte's line and
        # column only): the page computes it once, not on every change.
        usermeta=static_position("bpe_boxes"))


def bpe_vocab(res: TokenizationResults) -> alt.LayerChart:
    """Tokens in a text against vocabulary size: the small BPE's curve and the real encodings."""
    b = res.bpe
    ref = res.labels.index(res.reference_language)
    training, heldout = "paragraph (trained on)", f"{b.heldout_label} sentence (unseen)"
    curves = [{"vocabulary size": 256 + k, training: int(t), heldout: int(h)}
              for k, (t, h) in enumerate(zip(b.tokens, b.heldout_tokens))]
    real = [{"vocabulary size": e.n_vocab, "tokenizer": e.encoding, "text": name, "tokens": int(len(ids))}
            for e in res.encoded for name, ids in ((training, e.bpe_text_ids), (heldout, e.ids[ref]))]
    x = alt.X("vocabulary size:Q", scale=alt.Scale(type="log"), axis=alt.Axis(format="~s"),
              title="vocabulary size (log scale)")
    y = alt.Y("tokens:Q", scale=alt.Scale(zero=True), title="tokens")
    color = alt.Color("text:N", sort=[training, heldout], scale=alt.Scale(range=[ODD, NEWEST]),
                      legend=alt.Legend(orient="top", title=None))
    lines = alt.Chart(alt.Data(values=curves)).transform_fold(
        [training, heldout], as_=["text", "tokens"]).mark_line().encode(
        x=x, y=y, color=color,
        tooltip=["text:N", alt.Tooltip("vocabulary size:Q", format=","), "tokens:Q"])
    dots = alt.Chart(alt.Data(values=real)).mark_point(filled=True, size=60).encode(
        x=x, y=y, color=color,
        tooltip=["text:N", "tokenizer:N", alt.Tooltip("vocabulary size:Q", format=","), "tokens:Q"])
    return alt.layer(lines, dots).properties(
        width=WIDTH, height=260,
        title="Tokens needed against vocabulary size: the small BPE (lines), the real encodings (dots)")


# ---------------------------------------------------------------------------------------------
# What length costs


def attention_rows(res: TokenizationResults) -> list[dict]:
    a = res.attention
    seconds = dict(zip(a.timed_lengths.tolist(), a.seconds.tolist()))
    rows = []
    for i, n in enumerate(a.seq_lengths.tolist()):
        rows.append({
            "n": n, "log2 n": int(np.log2(n)), "score entries (n\u00b2)": int(a.entries[i]),
            "entries a causal model uses": int(a.causal_entries[i]),
            "FLOPs for QK\u1d40 per head per layer": int(a.score_flops[i]),
            "FLOPs for QK\u1d40 and WV per head per layer": int(a.attention_flops[i]),
            f"FLOPs for attention in {a.n_layer} layers \u00d7 {a.n_head} heads":
                int(a.attention_flops[i]) * a.n_layer * a.n_head,
            "measured ms (one head, numpy)": significant(1000 * seconds[n]) if n in seconds else None,
            "measured ratio to n/2": (significant(seconds[n] / seconds[n // 2], 4)
                                      if n in seconds and n // 2 in seconds else None),
        })
    return rows


def attention(res: TokenizationResults) -> alt.VConcatChart:
    """The n x n score matrix at the slider's n, what it costs, and measured numpy timings."""
    a = res.attention
    exps = [int(np.log2(n)) for n in a.seq_lengths.tolist()]
    if any(2 ** e != n for e, n in zip(exps, a.seq_lengths.tolist())):
        raise ValueError("the attention chart's slider needs sequence lengths that are powers of 2")
    start = min(exps, key=lambda e: abs(e - 10))
    log2n = alt.param(name="log2n", value=start, bind=alt.binding_range(
        min=min(exps), max=max(exps), step=1, name="context length n = 2^"))
    side = f"min(pow(2, log2n), {MATRIX_CELLS})"
    block = f"pow(2, log2n) / {side}"
    # The whole grid of cells is made once (it depends on no control); a change of n filters it.
    matrix = alt.Chart(alt.sequence(0, MATRIX_CELLS, as_="query")).transform_calculate(
        key=f"sequence(0, {MATRIX_CELLS})").transform_flatten(["key"]).transform_filter(
        f"datum.query < {side} && datum.key < {side}").transform_calculate(
        score=f"datum.key < datum.query ? 'used' : datum.key == datum.query ? "
              f"({block} > 1 ? 'half used' : 'used') : 'masked (future token)'",
        # Plain integers, not d3's format(…, ','): this string is remade for every cell on every
        # change of n, and four format calls a cell were half the cost of the change.
        tokens=f"'queries ' + toString(datum.query * {block}) + '\u2013' + "
               f"toString((datum.query + 1) * {block} - 1) + ', keys ' + "
               f"toString(datum.key * {block}) + '\u2013' + toString((datum.key + 1) * {block} - 1)",
    ).mark_rect(stroke="#ffffff", strokeWidth=0.3, aria=False).encode(  # a canvas, named as a whole
        x=alt.X("key:O", axis=None), y=alt.Y("query:O", axis=None),
        color=alt.Color("score:N", scale=alt.Scale(
            domain=["used", "half used", "masked (future token)"],
            range=[OKABE_ITO[0], OKABE_ITO[4], "#dddddd"]), legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("tokens:N", title="cell"), alt.Tooltip("score:N")],
    ).properties(width=240, height=240, title={"text": {"expr": (
        f"'The ' + format(pow(2, log2n), ',') + ' \u00d7 ' + format(pow(2, log2n), ',') + "
        f"' score matrix' + ({block} > 1 ? ' (one cell = ' + format({block}, ',') + '\u00b2 scores)' : '')")}})
    rows = attention_rows(res)
    numbers = [k for k in rows[0] if k not in ("n", "log2 n", "measured ratio to n/2")]
    table = text_lines(
        alt.Chart(alt.Data(values=rows)).transform_filter("datum['log2 n'] == log2n").transform_fold(
            numbers, as_=["_what", "_value"]).transform_filter("isValid(datum._value)").transform_calculate(
            _line="datum._what + ': ' + format(datum._value, ',')"),
        400, order=numbers, order_field="_what").properties(title="What attention costs at this n")
    measured = [r for r in rows if r["measured ms (one head, numpy)"] is not None]
    timing_base = alt.Chart(alt.Data(values=measured)).encode(
        x=alt.X("n:Q", scale=alt.Scale(type="log", base=2), title="context length n (log scale)"))
    times = timing_base.mark_line(point=True).encode(
        y=alt.Y("measured ms (one head, numpy):Q", scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~g", tickCount=6), title="measured milliseconds (log scale)"),
        tooltip=[alt.Tooltip("n:Q", format=","), alt.Tooltip("measured ms (one head, numpy):Q",
                                                              format=".4~g")],
    )
    ratios = timing_base.transform_filter("isValid(datum['measured ratio to n/2'])").mark_bar(
        color=OKABE_ITO[0]).encode(
        y=alt.Y("measured ratio to n/2:Q", title="time at n \u00f7 time at n/2",
                scale=alt.Scale(domain=[0, 6])),
        tooltip=[alt.Tooltip("n:Q", format=","), alt.Tooltip("measured ratio to n/2:Q", format=".3f")],
    )
    four = alt.Chart(alt.Data(values=[{"_y": 4}])).mark_rule(strokeDash=[4, 3], color=NEWEST).encode(
        y="_y:Q")
    marker = slider_rule("pow(2, log2n)", "n")
    timing = alt.hconcat(
        alt.layer(times, marker).properties(width=250, height=200, title="Measured: one head in numpy"),
        alt.layer(ratios, four).properties(width=250, height=200,
                                           title="Measured ratio per doubling (dashed: 4)"),
    )
    return alt.vconcat(alt.hconcat(matrix, table, spacing=30), timing).add_params(log2n).properties(
        title="What context length costs: the score matrix, its arithmetic, measured timings")


def figures(res: TokenizationResults) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the chapter, by the name the prose uses to place it."""
    charts = {"counts": counts, "language_cost": language_cost, "vocab_size": vocab_size,
              "special_tokens": special_tokens, "bpe_steps": bpe_steps, "bpe_vocab": bpe_vocab,
              "attention": attention}
    return {name: draw(res) for name, draw in charts.items()}
