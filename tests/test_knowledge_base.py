"""The RAG chapter's inputs: prose stripped to plain text, questions located by their passage,
conversations read, and every bad entry stopped with a message naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator import knowledge_base as kb
from generator.cache import Cache
from generator.checkpoints import shipped_memo
from generator.sims.family import uncached
from generator.grids import GridError, RagGrid, load_grids
from generator.sims import rag

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"


@pytest.mark.parametrize("markdown,expected", [
    ("## Top-k\n\n**Top-k** keeps {{ facts.k }} tokens: $p_i$.", "Top-k\n\nTop-k keeps tokens: p i."),
    ('{{ chart("x") }}\n\nText {% if a %}kept{% endif %} here.{# note #}', "Text kept here."),
    ('!!! note "About it"\n    Indented body.', "About it\n\nIndented body."),
    ("- one\n- two\n\n1. three", "one\n\ntwo\n\nthree"),
    ("A [link](sampling.md) and ![alt text](x.png).", "A link and alt text."),
    ("$$p_i = \\frac{\\exp(z_i)}{Z}$$", "p i = frac exp (z i) Z"),
    ("```python\nx = <|endoftext|>\n```", "x = <|endoftext|>"),
    ('<div class="x">inside</div> and <br> `code`', "inside and code"),
    ("| a | b |\n|---|---|\n| 1 | 2 |", "a b\n\n1 2"),
    ("Words\nacross   lines\n\n\n\nnext", "Words across lines\n\nnext"),
    ("The prompt \u201c{{ facts.prompt }}\u201d here", "The prompt here"),
    ("top_k and 2 * 3 * 4", "top_k and 2 * 3 * 4"),
    # Entities reach the chunks as the characters they stand for, and are not then read as markup
    ("A tag like &lt;script&gt; &amp; an &quot;entity&quot; &#169;", 'A tag like <script> & an "entity" \u00a9'),
    ("&lt;b&gt;shown&lt;/b&gt; and &#42;not emphasis&#42;", "<b>shown</b> and *not emphasis*"),
])
def test_plain_text_keeps_the_words_a_reader_sees(markdown, expected):
    assert kb.plain_text(markdown) == expected


def test_locate_ignores_markup_and_whitespace_runs():
    text = "Alpha beta.\n\nThe gap shrinks like 1/ sqrt N here."
    start, end = kb.locate("gap  shrinks like $1/\\sqrt{N}$", text)
    assert text[start:end] == "gap shrinks like 1/ sqrt N"


@pytest.mark.parametrize("passage,message", [
    ("not there", "passage 'not there' not found"),
    ("beta", "passage 'beta' found 2 times (quote more of it)"),
    ("{{ facts.x }}", "the passage is empty"),
])
def test_locate_refuses_missing_ambiguous_or_empty_passages(passage, message):
    with pytest.raises(kb.KnowledgeBaseError, match=None) as err:
        kb.locate(passage, "alpha beta gamma beta", "q.json: question 7")
    assert str(err.value) == f"q.json: question 7: {message}"


def test_the_knowledge_base_is_every_content_page_but_this_chapters_own():
    docs = kb.read_documents(CONTENT, ("*.md",), ("rag.md",))
    names = [d.name for d in docs]
    expected = sorted(p.name for p in CONTENT.glob("*.md") if p.name != "rag.md")
    assert names == expected and "sampling.md" in names and "index.md" in names
    for d in docs:
        assert "{{" not in d.text and "{%" not in d.text and "**" not in d.text


def test_every_labelled_question_is_found_in_its_source():
    inputs = kb.load(RagGrid(), CONTENT)
    by_name = {d.name: d for d in inputs.documents}
    raw = json.loads((CONTENT / "rag" / "questions.json").read_text())["questions"]
    assert len(inputs.questions) == len(raw) >= 30
    for q, item in zip(inputs.questions, raw):
        text = by_name[q.source].text
        assert text[q.start:q.end] == q.passage
        assert " ".join(q.passage.split()) == " ".join(kb.plain_text(item["passage"]).split())


def write_questions(tmp_path: Path, questions) -> Path:
    path = tmp_path / "questions.json"
    path.write_text(json.dumps({"questions": questions}))
    return path


@pytest.mark.parametrize("questions,message", [
    ([], 'questions.json: expected a non-empty list under "questions"'),
    ([{"question": "q", "source": "a.md"}], 'question 1: needs exactly "question", "source" and "passage"'),
    ([{"question": "q", "source": "b.md", "passage": "alpha"}], "question 1: source 'b.md' is not in the knowledge base (have: a.md)"),
    ([{"question": "q", "source": "a.md", "passage": "alpha"},
      {"question": "q", "source": "a.md", "passage": "omega"}], "question 2: passage 'omega' not found"),
])
def test_bad_questions_stop_with_a_message_naming_them(tmp_path, questions, message):
    docs = (kb.Document(name="a.md", text="alpha beta"),)
    with pytest.raises(kb.KnowledgeBaseError) as err:
        kb.read_questions(write_questions(tmp_path, questions), docs)
    assert message in str(err.value)


def test_the_script_is_read_with_its_tools_and_turns():
    script = kb.read_script(CONTENT / "rag" / "conversations.json")
    assert [t.name for t in script.tools] == ["calculator", "search"]
    assert json.loads(script.tools[0].parameters)["required"] == ["expression"]
    roles = {t.role for c in script.conversations for t in c.turns}
    assert roles == {"user", "model"}
    assert all((t.call is None) != (t.text is None) for c in script.conversations for t in c.turns)


def test_a_malformed_script_names_what_is_missing(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"system": "s", "tools": [{"name": "calculator"}], "conversations": []}))
    with pytest.raises(kb.KnowledgeBaseError, match="c.json: missing or malformed entry 'description'"):
        kb.read_script(path)
    for turn in ({"role": "runtime", "text": "{}"}, {"role": "user", "call": "{}"},
                 {"role": "model", "text": "a", "call": "{}"}, {"role": "model"}):
        path.write_text(json.dumps({"system": "s", "tools": [], "conversations": [
            {"name": "x", "title": "x", "turns": [turn]}]}))
        with pytest.raises(kb.KnowledgeBaseError, match="conversation 'x', turn 1: a turn is"):
            kb.read_script(path)
    path.write_text("{not json")
    with pytest.raises(kb.KnowledgeBaseError, match="c.json: not valid JSON"):
        kb.read_script(path)


def test_the_results_cache_keys_on_the_texts(tmp_path):
    content = tmp_path / "content"
    (content / "rag").mkdir(parents=True)
    for name in ("index.md", "sampling.md"):
        (content / name).write_text((CONTENT / name).read_text())
    for name in ("questions.json", "conversations.json"):
        (content / "rag" / name).write_text((CONTENT / "rag" / name).read_text())
    grid = RagGrid(chunk_sizes=(64,), overlaps=(16,), budgets=(256,), view_chunk_size=64, ks=(1,))
    cache = Cache(tmp_path / "cache")

    def run(inputs):  # the tool models as shipped, as the build reads them
        return cache.result(rag.simulate, inputs, compute=lambda c: rag.simulate(c, shipped_memo(uncached)))

    run(kb.load(grid, content))
    run(kb.load(grid, content))
    assert cache.misses.count("generator.sims.rag.simulate") == 1 and len(cache.hits) == 1
    (content / "index.md").write_text((CONTENT / "index.md").read_text() + "\n\nA new paragraph.\n")
    run(kb.load(grid, content))
    assert cache.misses.count("generator.sims.rag.simulate") == 2


@pytest.mark.parametrize("overrides,message", [
    ({"overlaps": [0, 32]}, "grids.rag.overlaps[1]: overlap 32 must be smaller than every chunk size (the smallest is 32 tokens)"),
    ({"chunk_sizes": [64, 32]}, "grids.rag.chunk_sizes[1]: grid must be strictly increasing"),
    ({"chunk_sizes": [4, 64]}, "grids.rag.chunk_sizes[0]: 4 must be >= 8"),
    ({"headline_budget": 300}, "grids.rag.headline_budget: 300 is not one of the budgets"),
    ({"view_chunk_size": 100}, "grids.rag.view_chunk_size: 100 is not one of the chunk_sizes"),
    ({"view_overlap": 4}, "grids.rag.view_overlap: 4 is not one of the overlaps"),
    ({"bm25_b": 1.5}, "grids.rag.bm25_b: 1.5 must be <= 1.0"),
    ({"hybrid_weight": -0.1}, "grids.rag.hybrid_weight: -0.1 must be >= 0.0"),
    ({"search_method": "random"}, "grids.rag.search_method: 'random' is not one of tf-idf, lsa, bm25, hybrid"),
    ({"svd_rank": 0}, "grids.rag.svd_rank: 0 must be >= 1"),
    ({"documents": []}, None),
])
def test_bad_rag_grid_values_name_the_field(overrides, message):
    if message is None:  # an empty knowledge base is caught when the files are read
        with pytest.raises(kb.KnowledgeBaseError, match="no content file matches"):
            kb.load(load_grids({"rag": overrides}).rag, CONTENT)
        return
    with pytest.raises(GridError) as err:
        load_grids({"rag": overrides})
    assert message in str(err.value)


def test_emphasis_around_a_removed_jinja_expression_leaves_no_markers():
    assert kb.plain_text("end **{{ facts.word }}**. Then **bold** text") == "end . Then bold text"


def test_a_rendered_page_reaches_the_knowledge_base_as_its_reader_reads_it(tmp_path):
    from dataclasses import dataclass

    from markupsafe import Markup

    from generator.pages.render import render_page

    @dataclass(frozen=True)
    class Facts:
        big: bool
        n: int

    (tmp_path / "a.md").write_text(
        "{% if facts.big %}Large{% else %}Small{% endif %}: {{ facts.n }} tokens, "
        "$p_i = \\frac{1}{n}$, &lt;kept&gt;.\n\n{{ widget('view') }}\n\nEnd.\n")
    page = render_page(tmp_path, "a.md", facts=Facts(big=True, n=42),
                       widgets={"view": Markup("\n\n<div class='tokens'><span>every</span></div>\n\n")})
    text = kb.plain_text(page.reader_text())
    assert text == "Large: 42 tokens, p i = frac 1 n, <kept>.\n\nEnd."
    (doc,) = kb.read_documents(tmp_path, ("*.md",), (), {"a.md": page.reader_text()})
    assert doc.text == text


def test_the_sites_knowledge_base_holds_the_numbers_its_pages_show(site):
    import json

    spec = json.loads((site / "specs" / "rag" / "ranked.vl.json").read_text())
    chunks = json.dumps(spec)
    assert "( parameters)" not in chunks and "{{" not in chunks and "{%" not in chunks
    assert "layer" in chunks and "bits per token" in chunks
