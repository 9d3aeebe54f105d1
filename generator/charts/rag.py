"""Charts of the "RAG and tool calling" chapter: one function per chart, results in, alt.Chart out."""

from __future__ import annotations

import altair as alt
import numpy as np

from generator.charts.common import OKABE_ITO, WIDTH, significant, text_on_viridis
from generator.sims import tool_use
from generator.sims.rag import KIND_NAMES, LABELS, RANKED_TOP, RagResults, shown_generated

ANSWERS, OTHER, BUDGET = "#D55E00", "#0072B2", "#CC79A7"
ROLE_COLOURS = {"system": "#999999", "user": "#0072B2", "model": "#E69F00", "runtime": "#009E73"}
VIEW_METHODS = ("lsa", "bm25", "hybrid")
HEATMAP_TOP = 5  # the cosine heatmap shows chunks in some question's LSA top 5 ...
HEATMAP_MAX = 40  # ... at most this many, answering and first-ranked chunks first
TRACE_COLUMNS = 100  # characters per line of the token trace
GENERATED_COLUMNS = 80  # ... and of the tiny model's conversations (its lines are short)
CHAR_PX = 7.4  # width of one monospace character at TRACE_FONT px
TRACE_FONT = 12
LINE_PX = 17  # height of one line of tokens
MONO = 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace'


def _view_methods(res: RagResults) -> list[int]:
    """The methods the detailed views compare: the embedding, the lexical score and their mix."""
    return [list(res.retrieval.methods).index(name) for name in VIEW_METHODS]


def _question_param(res: RagResults, name: str = "question") -> alt.Parameter:
    questions = res.retrieval.questions
    return alt.param(name=name, value=0, bind=alt.binding_select(
        options=list(range(len(questions))),
        labels=[f"{i + 1}. {q}" for i, q in enumerate(questions)], name="question "))


def _chunk_label(res: RagResults, c: int) -> str:
    """A chunk's name: its document and its position among that document's chunks."""
    v = res.retrieval.view
    doc = int(v.chunk_doc[c])
    nth = int((v.chunk_doc[:c] == doc).sum()) + 1
    return f"{res.retrieval.documents[doc]} #{nth}"


# ---------------------------------------------------------------------------------------------
# Retrieval quality over the grid


def metric_names(res: RagResults) -> list[str]:
    r = res.retrieval
    return ([f"hit rate@{int(k)}" for k in r.ks] + ["MRR"]
            + [f"found within {int(b)} tokens" for b in r.budgets])


def quality(res: RagResults) -> alt.LayerChart:
    """Heatmap of one score over chunk size x overlap, for the method and score chosen."""
    r = res.retrieval
    metrics = metric_names(res)
    rows = []
    for m, method in enumerate(r.methods):
        for i, size in enumerate(r.chunk_sizes):
            for j, overlap in enumerate(r.overlaps):
                values = list(r.hit_rate[m, i, j]) + [r.mrr[m, i, j]] + list(r.found_within[m, i, j])
                rows.append({"method": LABELS[method], "chunk size": int(size), "overlap": int(overlap),
                             "chunks": int(r.n_chunks[i, j]),
                             **{name: significant(v) for name, v in zip(metrics, values)}})
    method = alt.param(name="method", value=LABELS[r.best[0]], bind=alt.binding_radio(
        options=[LABELS[m] for m in r.methods], name="method "))
    metric = alt.param(name="metric", value=f"found within {r.headline_budget} tokens",
                       bind=alt.binding_select(options=metrics, name="score "))
    base = alt.Chart(alt.Data(values=rows)).transform_filter(
        "datum.method == method").transform_calculate(score="datum[metric]").transform_joinaggregate(
        _best="max(score)")
    x = alt.X("overlap:O", title="overlap between neighbouring chunks (tokens)")
    y = alt.Y("chunk size:O", sort="descending", title="chunk size (tokens)")
    tooltip = [alt.Tooltip("method:N"), alt.Tooltip("chunk size:Q"), alt.Tooltip("overlap:Q"),
               alt.Tooltip("chunks:Q"), alt.Tooltip("score:Q", title="score (as chosen)", format=".4f")]
    cells = base.mark_rect().encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("score:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]),
                        legend=alt.Legend(title="score")))
    best = base.transform_filter("datum.score == datum._best").mark_rect(
        fill=None, stroke=ANSWERS, strokeWidth=3).encode(x=x, y=y, tooltip=tooltip)
    labels = base.mark_text(fontSize=12).encode(
        x=x, y=y, text=alt.Text("score:Q", format=".2f"), tooltip=tooltip,
        color=text_on_viridis("score"))
    return alt.layer(cells, best, labels).add_params(method, metric).properties(
        width=WIDTH * 0.6, height=280,
        title="Retrieval quality over chunk size \u00d7 overlap (orange: best cell)")


# ---------------------------------------------------------------------------------------------
# One question in detail


def ranked(res: RagResults) -> alt.FacetChart:
    """Each method's top chunks for the chosen question, laid end to end along the token axis."""
    r, v = res.retrieval, res.retrieval.view
    methods = _view_methods(res)
    budgets = list(r.budgets)
    shown_budgets = [int(b) for b in budgets if b <= RANKED_TOP * v.chunk_size]
    rows, shown = [], set()
    for m in methods:
        for q in range(len(r.questions)):
            top = [int(c) for c in v.order[m, q, :RANKED_TOP]]
            packed_at = [next((int(b) for n, b in enumerate(budgets) if v.packed[m, q, n, c]), None)
                         for c in top]
            rows.append({"question": q, "method": LABELS[r.methods[m]], "chunk": top,
                         "score": [significant(v.scores[m, q, c], 4) for c in top], "packed at budget": packed_at})
            shown.update(top)
    chunks = [{"chunk": c, "source": _chunk_label(res, c), "tokens": int(v.chunk_tokens[c]),
               "text": v.chunk_text[c], "_answers": _answered(res, c)} for c in sorted(shown)]
    question = _question_param(res)
    budget = alt.param(name="budget", value=min(shown_budgets, key=lambda b: abs(b - r.headline_budget)),
                       bind=alt.binding_radio(options=shown_budgets, name="token budget "))
    x = alt.X("_from:Q", scale=alt.Scale(domain=[0, RANKED_TOP * v.chunk_size], nice=False),
              title="tokens of context, chunks in rank order")
    tooltip = [alt.Tooltip("method:N"), alt.Tooltip("rank:Q"), alt.Tooltip("source:N"),
               alt.Tooltip("score:Q", format=".4f"), alt.Tooltip("tokens:Q"),
               alt.Tooltip("answers:N", title="answers the question"),
               alt.Tooltip("packed:N", title="fits the budget"), alt.Tooltip("text:N", title="chunk")]
    blocks = alt.Chart().mark_rect(stroke="white", strokeWidth=1.5).encode(
        x=x, x2="_to:Q", tooltip=tooltip,
        color=alt.Color("answers:N", scale=alt.Scale(domain=[True, False], range=[ANSWERS, OTHER]),
                        legend=alt.Legend(title="answers the question", orient="top",
                                          labelExpr="datum.value ? 'yes' : 'no'")),
        opacity=alt.condition("datum.packed", alt.value(0.95), alt.value(0.25)))
    # On a packed block: black on the answering colour, white on the other (each >= 4.5:1);
    # on a faded block, the page's own text colour.
    label = alt.Chart().mark_text(align="left", dx=4, fontSize=11).encode(
        x="_from:Q", text="label:N", tooltip=tooltip)
    labels = alt.layer(
        label.transform_filter("datum.packed").encode(
            color=alt.condition("datum.answers", alt.value("black"), alt.value("white"))),
        label.transform_filter("!datum.packed"))
    rule = alt.Chart().mark_rule(color=BUDGET, strokeWidth=3, strokeDash=[6, 3]).encode(
        x=alt.X(datum=alt.expr("budget"), type="quantitative"))
    return alt.layer(blocks, labels, rule, data=alt.Data(values=rows)).transform_filter(
        "datum.question == question"
    ).transform_flatten(
        ["chunk", "score", "packed at budget"]
    ).transform_window(
        rank="row_number()", groupby=["method"]
    ).transform_lookup(lookup="chunk", from_=alt.LookupData(
        data=alt.Data(values=chunks), key="chunk", fields=["source", "tokens", "text", "_answers"])
    ).transform_window(
        _to="sum(tokens)", groupby=["method"], sort=[alt.SortField("rank")], frame=[None, 0]
    ).transform_calculate(
        _from="datum._to - datum.tokens",
        answers="indexof(datum._answers, question) >= 0",
        packed="datum['packed at budget'] != null && datum['packed at budget'] <= budget",
        label="'#' + datum.rank + ' ' + format(datum.score, '.2f')",
    ).properties(width=WIDTH, height=30).facet(
        row=alt.Row("method:N", sort=[LABELS[r.methods[m]] for m in methods],
                    header=alt.Header(labelAngle=0, labelAlign="left", title=None)),
        spacing=4,
    ).add_params(question, budget).properties(
        title=f"Top {RANKED_TOP} chunks per method ({v.chunk_size}-token chunks, {v.overlap} overlap); "
              "faded: cut by the budget")


def _answered(res: RagResults, c: int) -> list[int]:
    """The questions (by index) that chunk c of the detailed view answers."""
    return [int(q) for q in np.flatnonzero(res.retrieval.view.relevant[:, c])]


def cosine_heatmap(res: RagResults) -> alt.LayerChart:
    """LSA cosine of every question with the chunks that matter to some question (heatmap_chunks)."""
    r, v = res.retrieval, res.retrieval.view
    lsa = list(r.methods).index("lsa")
    rank_of = np.argsort(v.order[lsa], axis=-1) + 1  # [n_query, n_chunk] inverse permutation
    shown = heatmap_chunks(rank_of, v.relevant)
    labels = [_chunk_label(res, c) for c in shown]
    rows = [{"question": q + 1, "chunk": shown, "cosine": [significant(v.scores[lsa, q, c], 4) for c in shown],
             "rank": [int(rank_of[q, c]) for c in shown]} for q in range(len(r.questions))]
    chunks = [{"chunk": c, "name": label, "_answers": [q + 1 for q in _answered(res, c)]}
              for c, label in zip(shown, labels)]
    questions = [{"question": q + 1, "asks": text} for q, text in enumerate(r.questions)]
    base = alt.Chart()
    x = alt.X("name:N", sort=labels, title="chunk (document order)",
              axis=alt.Axis(labelAngle=-60, labelFontSize=9))
    y = alt.Y("question:O", title="question")
    tooltip = [alt.Tooltip("question:O"), alt.Tooltip("asks:N", title="question text"),
               alt.Tooltip("name:N", title="chunk"), alt.Tooltip("cosine:Q", format=".4f"),
               alt.Tooltip("rank:Q", title="rank for this question"),
               alt.Tooltip("answers:N", title="answers it")]
    cells = base.mark_rect().encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("cosine:Q", scale=alt.Scale(scheme="viridis", domain=[-0.2, 1]),
                        legend=alt.Legend(title="cosine")))
    answers = base.transform_filter("datum.answers").mark_rect(
        fill=None, stroke=ANSWERS, strokeWidth=2).encode(x=x, y=y, tooltip=tooltip)
    first = base.transform_filter("datum.rank == 1").mark_point(
        shape="circle", filled=True, size=22, color="white").encode(x=x, y=y, tooltip=tooltip)
    return alt.layer(cells, answers, first, data=alt.Data(values=rows)).transform_flatten(
        ["chunk", "cosine", "rank"]
    ).transform_lookup(
        lookup="chunk", from_=alt.LookupData(data=alt.Data(values=chunks), key="chunk",
                                             fields=["name", "_answers"])
    ).transform_lookup(
        lookup="question", from_=alt.LookupData(data=alt.Data(values=questions), key="question",
                                                fields=["asks"])
    ).transform_calculate(answers="indexof(datum._answers, datum.question) >= 0").properties(
        width=max(WIDTH, 14 * len(shown)), height=12 * len(r.questions),
        title="LSA cosine, question × chunk (orange box: answers it; white dot: ranked first)")


def heatmap_chunks(rank_of: np.ndarray, relevant: np.ndarray) -> list[int]:
    """The heatmap's columns, in document order: every answering or first-ranked chunk, then
    the best-placed others (by their best rank for any question) up to HEATMAP_MAX in all."""
    best = rank_of.min(axis=0)  # [n_chunk]
    must = np.flatnonzero(relevant.any(axis=0) | (best == 1))
    others = [c for c in np.argsort(best, kind="stable") if c not in set(must) and best[c] <= HEATMAP_TOP]
    return sorted(int(c) for c in list(must) + others[: max(HEATMAP_MAX - len(must), 0)])


def projection(res: RagResults) -> alt.LayerChart:
    """The chunks' LSA embeddings projected on their first two principal axes, with the question."""
    r, v = res.retrieval, res.retrieval.view
    question = _question_param(res)
    # The document is the chunk label's first word ("alignment.md #3"): derived in the chart, not stored.
    chunks = [{"chunk": _chunk_label(res, c),
               "PC 1": significant(v.chunk_xy[c, 0], 4), "PC 2": significant(v.chunk_xy[c, 1], 4),
               "_answers": _answered(res, c),
               "starts": _snippet(v.chunk_text[c])}
              for c in range(len(v.chunk_text))]
    queries = [{"question": q, "asks": text, "PC 1": significant(v.query_xy[q, 0], 4),
                "PC 2": significant(v.query_xy[q, 1], 4)} for q, text in enumerate(r.questions)]
    x = alt.X("PC 1:Q", title=f"first principal axis ({v.explained[0]:.1%} of the variance)")
    y = alt.Y("PC 2:Q", title=f"second principal axis ({v.explained[1]:.1%})")
    points = alt.Chart(alt.Data(values=chunks)).transform_calculate(
        answers="indexof(datum._answers, question) >= 0",
        document="split(datum.chunk, ' #')[0]").mark_point(filled=True, opacity=0.85).encode(
        x=x, y=y,
        color=alt.Color("document:N", scale=alt.Scale(range=OKABE_ITO), legend=alt.Legend(title="chunk of")),
        size=alt.condition("datum.answers", alt.value(260), alt.value(50)),
        shape=alt.condition("datum.answers", alt.value("diamond"), alt.value("circle")),
        tooltip=[alt.Tooltip("chunk:N"), alt.Tooltip("answers:N", title="answers the question"),
                 alt.Tooltip("starts:N"), alt.Tooltip("PC 1:Q", format=".3f"),
                 alt.Tooltip("PC 2:Q", format=".3f")])
    query = alt.Chart(alt.Data(values=queries)).transform_filter("datum.question == question").mark_point(
        shape="cross", filled=True, size=320, color="black", stroke="white", strokeWidth=1.5).encode(
        x=x, y=y, tooltip=[alt.Tooltip("asks:N", title="question"), alt.Tooltip("PC 1:Q", format=".3f"),
                           alt.Tooltip("PC 2:Q", format=".3f")])
    return alt.layer(points, query).add_params(question).properties(
        width=WIDTH, height=360,
        title="Chunks and the question in LSA space, projected to 2-D (diamonds: the answer)")


def _snippet(text: str, n: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "\u2026"


# ---------------------------------------------------------------------------------------------
# The tool-call loop


def trace(res: RagResults) -> alt.LayerChart:
    """Every token of the chosen conversation, wrapped into lines, coloured by who wrote it."""
    t = res.tools
    rows = []
    for c, tr in enumerate(t.traces):
        line, col = 0, 0
        turns = [{"conversation": c, "turn": i + 1, "role": role, "token": [], "id": [],
                  "_line": [], "_col": []} for i, role in enumerate(tr.turn_roles)]
        for text, token_id, turn in zip(tr.token_text, tr.token_ids, tr.token_turn):
            shown = text.replace("\n", "\u21b5")
            if col + len(shown) > TRACE_COLUMNS and col > 0:
                line, col = line + 1, 0
            for key, value in (("token", shown), ("id", int(token_id)), ("_line", line), ("_col", col)):
                turns[turn][key].append(value)
            col += len(shown)
            if "\n" in text:
                line, col = line + 1, 0
        # The system turn opens every conversation alike: it is stored once, for all.
        if c == 0:
            turns[0]["conversation"] = -1
        rows += turns if c == 0 else [row for row in turns if row["role"] != "system"]
    return _token_lines(rows, _conversation_param(res), [alt.Tooltip("id:Q", title="token id")],
                        "The context token by token (cl100k_base; \u21b5 = newline); the model's turns are scripted")


def _token_lines(rows: list[dict], pick: alt.Parameter, extra_tooltip: list, title: str,
                 columns: int = TRACE_COLUMNS, roles: tuple[str, ...] = tuple(ROLE_COLOURS)) -> alt.LayerChart:
    """Token boxes at (_line, _col), tinted by role, their text on top; rows of one turn each hold
    lists (token, _line, _col and any extra fields), flattened here; conversation -1 is shown always."""
    lists = [k for k, v in rows[0].items() if isinstance(v, list)]
    base = alt.Chart(alt.Data(values=rows)).transform_filter(
        f"datum.conversation == {pick.name} || datum.conversation == -1"
    ).transform_flatten(lists).transform_calculate(
        # Vega trims a text mark's leading spaces: start the text after them instead.
        _end="datum._col + length(datum.token)",
        _text_col="datum._col + length(datum.token) - length(replace(datum.token, /^ +/, ''))")
    scale = alt.Scale(domain=[0, columns], range=[0, columns * CHAR_PX])
    x = alt.X("_col:Q", scale=scale, axis=None)
    # As many lines as the longest choice has, at every choice: the chart keeps its height, and a
    # change repaints its canvas instead of making a new one (and moving the page below it).
    lines = 1 + max(max(row["_line"], default=0) for row in rows)
    y = alt.Y("_line:O", axis=None, scale=alt.Scale(domain=list(range(lines))))
    tooltip = [alt.Tooltip("token:N"), *extra_tooltip, alt.Tooltip("role:N")]
    # Light tints under black text read the same on the light and the dark page; a one-pixel
    # gap (not a stroke, which would glare on the dark page) separates neighbouring tokens.
    tints = alt.Scale(domain=list(roles), range=[_tint(ROLE_COLOURS[r]) for r in roles])
    boxes = base.mark_rect(x2Offset=-1).encode(
        x=x, x2="_end:Q", y=y, tooltip=tooltip,
        color=alt.Color("role:N", scale=tints, legend=alt.Legend(title="written by", orient="top")))
    text = base.mark_text(align="left", baseline="middle", font=MONO, fontSize=TRACE_FONT,
                          color="black").encode(
        x=alt.X("_text_col:Q", scale=scale, axis=None), y=y, text="token:N", tooltip=tooltip)
    return alt.layer(boxes, text).add_params(pick).properties(
        width=columns * CHAR_PX, height=lines * LINE_PX, title=title)


def _tint(colour: str, white: float = 0.6) -> str:
    """The colour mixed with `white` parts of white: "#0072B2" -> "#99c7e0"."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * white):02x}" for c in rgb)


def _conversation_param(res: RagResults) -> alt.Parameter:
    titles = [tr.title for tr in res.tools.traces]
    return alt.param(name="conversation", value=0, bind=alt.binding_radio(
        options=list(range(len(titles))), labels=titles, name="conversation "))


def _role_scale() -> alt.Scale:
    return alt.Scale(domain=list(ROLE_COLOURS), range=list(ROLE_COLOURS.values()))


def turn_tokens(res: RagResults) -> alt.Chart:
    """Tokens per turn of every conversation, and what the tools' schemas cost inside the system turn."""
    t = res.tools
    rows = []
    for c, tr in enumerate(t.traces):
        for i, (role, n) in enumerate(zip(tr.turn_roles, tr.turn_tokens)):
            rows.append({"conversation": c, "turn": f"{i + 1}. {role}", "role": role,
                         "tokens": int(n), "part": "whole turn"})
        for name, n in zip(t.tools, t.schema_tokens):
            rows.append({"conversation": c, "turn": "1. system", "role": "system",
                         "tokens": int(n), "part": f"schema of {name}"})
    return alt.Chart(alt.Data(values=rows)).transform_filter(
        "datum.conversation == conversation").mark_bar().encode(
        y=alt.Y("turn:N", sort=None, title=None),
        x=alt.X("tokens:Q", title="tokens (cl100k_base)"),
        yOffset=alt.YOffset("part:N"),
        color=alt.Color("role:N", scale=_role_scale(), legend=alt.Legend(title="written by")),
        opacity=alt.condition("datum.part == 'whole turn'", alt.value(0.9), alt.value(0.45)),
        tooltip=[alt.Tooltip("turn:N"), alt.Tooltip("part:N"), alt.Tooltip("tokens:Q")],
    ).add_params(_conversation_param(res)).properties(
        width=WIDTH, height={"step": 14},
        title="Tokens per turn (pale bars: the tools' schemas, part of the system turn)")


# ---------------------------------------------------------------------------------------------
# The chapter


# ---------------------------------------------------------------------------------------------
# The tiny model that really calls the calculator


def generated(res: RagResults) -> alt.LayerChart:
    """Conversations the tiny model wrote on held-out questions, token by token, coloured by who
    wrote each token; the runtime's tokens carry its whole reply (an error's words included)."""
    gs = res.tool_use.generated
    rows = []
    for c, (_, i) in enumerate(shown_generated(res.tool_use)):
        g = gs[i]
        line, col, replies, run = 0, 0, iter(g.replies), None
        for token, author in zip(g.tokens, g.authors):
            if run is None or run["role"] != author:  # a row per run of one author's tokens
                run = {"conversation": c, "role": author, "token": [], "_line": [], "_col": [],
                       "reply": next(replies) if author == "runtime" else ""}
                rows.append(run)
            if col + len(token) > GENERATED_COLUMNS and col > 0:
                line, col = line + 1, 0
            for key, value in (("token", token), ("_line", line), ("_col", col)):
                run[key].append(value)
            col += len(token) + 1
            if token == tool_use.CLOSE:
                line, col = line + 1, 0
    titles = res.facts.generated_titles
    pick = alt.param(name="generated", value=0, bind=alt.binding_radio(
        options=list(range(len(titles))), labels=titles, name="question "))
    return _token_lines(rows, pick, [alt.Tooltip("reply:N", title="the runtime's reply")],
                        f"What the tiny model ({res.facts.tool_model}) wrote, greedy, on held-out questions",
                        columns=GENERATED_COLUMNS, roles=("user", "model", "runtime"))


def tool_accuracy(res: RagResults) -> alt.Chart:
    """Share of held-out questions answered right, per kind: the model that calls, the one that does not."""
    u = res.tool_use
    models = ("calls the calculator", "answers at once")
    rows = [{"kind": KIND_NAMES[k], "model": models[m], "right": float(u.accuracy[m, j]),
             "questions": int(u.n_heldout[j]), "called": float(u.called[j]) if m == 0 else None}
            for j, k in enumerate(u.kinds) for m in range(2)]
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        y=alt.Y("kind:N", sort=[KIND_NAMES[k] for k in u.kinds], title=None),
        yOffset=alt.YOffset("model:N", sort=list(models)),
        x=alt.X("right:Q", title="share of held-out answers right", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=alt.Color("model:N", sort=list(models), scale=alt.Scale(domain=list(models),
                        range=[ROLE_COLOURS["model"], OTHER]), legend=alt.Legend(title="the model that", orient="top")),
        tooltip=[alt.Tooltip("kind:N", title="question"), alt.Tooltip("model:N"),
                 alt.Tooltip("right:Q", format=".1%", title="answered right"),
                 alt.Tooltip("called:Q", format=".1%", title="called the calculator"),
                 alt.Tooltip("questions:Q", title="held-out questions")],
    ).properties(width=WIDTH, height={"step": 16},
                 title=f"Answers right on {int(u.n_heldout.sum())} held-out questions, with the tool and without")


# ---------------------------------------------------------------------------------------------
# The chapter


def figures(res: RagResults) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the chapter, by the name the prose uses to place it."""
    charts = {"quality": quality, "ranked": ranked, "cosine": cosine_heatmap,
              "projection": projection, "trace": trace, "turn_tokens": turn_tokens,
              "generated": generated, "tool_accuracy": tool_accuracy}
    return {name: draw(res) for name, draw in charts.items()}
