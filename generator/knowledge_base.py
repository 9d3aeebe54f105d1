"""The RAG chapter's inputs, read from content/: this site's prose as plain text, the labelled
questions, and the scripted conversations of the tool-call loop.

Everything the simulation reads is put into its config here, so the results cache (keyed by
the config) is invalidated when any of these texts changes. Prose is stripped of what a reader
never sees as words: Jinja expressions and tags, HTML tags, Markdown markup, TeX commands;
an HTML entity (``&lt;``) becomes the character it stands for.

A labelled question names its source file and quotes the passage that answers it. The passage
is located in the stripped text (ignoring markup and runs of whitespace), so the label follows
the prose through any re-chunking; a passage that is missing, or found more than once, stops
the build with a message naming the question.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Mapping

from generator.grids import PretrainingGrid, RagGrid
from generator.sims.rag import RagInputs
from generator import encodings
from generator.sims.retrieval import ENCODING, Document, Question
from generator.sims.tools import Conversation, Script, Tool, Turn


class KnowledgeBaseError(ValueError):
    """A question, passage or conversation that cannot be used; the message says which."""


def load(grid: RagGrid, content_dir: Path, pages: Mapping[str, str] | None = None,
         family: PretrainingGrid | None = None) -> RagInputs:
    """Read the knowledge base, the questions and the conversations named by the grid; the tiny
    tool-calling model comes from `family` (the default pretraining family if None).

    `pages` maps content files to their rendered Markdown (numbers filled in, only the branch
    each condition took); without it, the content files' own text is read."""
    documents = read_documents(content_dir, grid.documents, grid.exclude, pages)
    questions = read_questions(content_dir / grid.questions, documents)
    script = read_script(content_dir / grid.conversations)
    return RagInputs(grid=grid, documents=documents, questions=questions, script=script,
                     family=family if family is not None else PretrainingGrid(),
                     encoding_sha256=encodings.data_sha256(ENCODING),
                     encoding=encodings.get_encoding(ENCODING))


# ---------------------------------------------------------------------------------------------
# Documents


def read_documents(content_dir: Path, patterns: tuple[str, ...], exclude: tuple[str, ...],
                   pages: Mapping[str, str] | None = None) -> tuple[Document, ...]:
    """Every content file matching a pattern and no exclusion, as plain text, sorted by name
    (the rendered page where `pages` has it)."""
    names = sorted({p.relative_to(content_dir).as_posix()
                    for pattern in patterns for p in content_dir.glob(pattern) if p.is_file()})
    names = [n for n in names if not any(Path(n).match(x) for x in exclude)]
    if not names:
        raise KnowledgeBaseError(f"no content file matches {list(patterns)} (minus {list(exclude)})")
    pages = pages or {}
    return tuple(Document(name=n, text=plain_text(pages[n] if n in pages else
                                                  (content_dir / n).read_text(encoding="utf-8")))
                 for n in names)


_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_FENCE = re.compile(r"^[ \t]*(```|~~~).*$", re.M)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)([^$\n]+?)(?<=\S)\$(?!\$)")
# A formula rendered as MathML (inline ones wrapped in a span): its TeX is in alttext.
_MATHML = re.compile(r'(?:<span class="math-inline">)?<math\b[^>]*\balttext="([^"]*)"[^>]*>.*?</math>'
                     r'(?:</span>)?', re.S)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.S)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_ATTR_LIST = re.compile(r"\{:?\s*[.#][^}]*\}")
_ADMONITION = re.compile(r'^[ \t]*(?:!!!|\?\?\?\+?)[ \t]*\w+(?:[ \t]+"([^"\n]*)")?[ \t]*$', re.M)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)
_LIST_MARK = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+", re.M)
_EMPHASIS = re.compile(r"(\*\*|__|\*|\b_)(\S(?:.*?\S)?)\1", re.S)
_EMPTY_EMPHASIS = re.compile(r"(\*\*|__)\s*\1")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}.*$", re.M)
_TABLE_ROW = re.compile(r"^[ \t]*\|.*\|[ \t]*$", re.M)


def plain_text(markdown: str) -> str:
    """Content-file Markdown as the words a reader sees: one paragraph per line pair.

    Example: plain_text('## Top-k\\n\\n**Top-k** keeps {{ facts.k }} tokens: $p_i$.') ->
    'Top-k\\n\\nTop-k keeps tokens: p i.'
    """
    text = _JINJA.sub("", markdown)
    text = _EMPTY_EMPHASIS.sub("", text)  # markers left around a removed Jinja expression
    text = _FENCE.sub("", text)
    text = _DISPLAY_MATH.sub(lambda m: "\n\n" + tex_words(m.group(1)) + "\n\n", text)
    text = _INLINE_MATH.sub(lambda m: tex_words(m.group(1)), text)
    text = _MATHML.sub(lambda m: tex_words(html.unescape(m.group(1))), text)
    text = _HTML_TAG.sub(" ", text)
    text = _IMAGE_OR_LINK.sub(r"\1", text)
    text = _ATTR_LIST.sub("", text)
    text = _ADMONITION.sub(lambda m: "\n\n" + (m.group(1) or "") + "\n\n", text)
    text = _HEADING.sub(lambda m: "\n\n" + m.group(1) + "\n\n", text)
    text = _TABLE_RULE.sub("", text)
    text = _TABLE_ROW.sub(lambda m: m.group(0).replace("|", " "), text)
    text = _LIST_MARK.sub("\n\n", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = text.replace("`", "").replace("\u201c\u201d", "")
    text = html.unescape(text)  # last, so an entity's character is text, never markup to strip
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)


def tex_words(tex: str) -> str:
    r"""TeX as the words and symbols it names. Example: tex_words(r'\frac{a}{b_i}') -> 'frac a b i'"""
    words = re.sub(r"\\([A-Za-z]+)", r" \1 ", tex)
    words = re.sub(r"[{}_^\\]", " ", words)
    return " ".join(words.split())


# ---------------------------------------------------------------------------------------------
# Questions


def read_questions(path: Path, documents: tuple[Document, ...]) -> tuple[Question, ...]:
    """The labelled questions, each with its passage located in its source document."""
    by_name = {d.name: d for d in documents}
    items = _json(path).get("questions")
    if not isinstance(items, list) or not items:
        raise KnowledgeBaseError(f"{path.name}: expected a non-empty list under \"questions\"")
    questions = []
    for n, item in enumerate(items, 1):
        where = f"{path.name}: question {n}"
        if not isinstance(item, dict) or set(item) != {"question", "source", "passage"}:
            raise KnowledgeBaseError(f"{where}: needs exactly \"question\", \"source\" and \"passage\"")
        doc = by_name.get(item["source"])
        if doc is None:
            raise KnowledgeBaseError(
                f"{where}: source {item['source']!r} is not in the knowledge base "
                f"(have: {', '.join(by_name)})")
        start, end = locate(item["passage"], doc.text, where)
        questions.append(Question(text=item["question"], source=doc.name,
                                  passage=doc.text[start:end], start=start, end=end))
    return tuple(questions)


def locate(passage: str, text: str, where: str = "passage") -> tuple[int, int]:
    """Character span of the passage in text, markup and whitespace runs ignored; found once."""
    words = plain_text(passage).split()
    if not words:
        raise KnowledgeBaseError(f"{where}: the passage is empty")
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    found = list(pattern.finditer(text))
    if len(found) != 1:
        problem = "not found" if not found else f"found {len(found)} times (quote more of it)"
        raise KnowledgeBaseError(f"{where}: passage {' '.join(words)[:80]!r} {problem}")
    return found[0].span()


# ---------------------------------------------------------------------------------------------
# Conversations


def read_script(path: Path) -> Script:
    """The system prompt, the tools' schemas and the scripted conversations."""
    data = _json(path)
    try:
        system = str(data["system"])
        tools = tuple(Tool(name=t["name"], description=t["description"],
                           parameters=json.dumps(t["parameters"])) for t in data["tools"])
        conversations = tuple(
            Conversation(name=c["name"], title=c["title"],
                         turns=tuple(Turn(role=t["role"], text=t.get("text"), call=t.get("call"))
                                     for t in c["turns"]))
            for c in data["conversations"])
    except (KeyError, TypeError) as exc:
        raise KnowledgeBaseError(f"{path.name}: missing or malformed entry {exc}") from exc
    for c in conversations:
        for n, turn in enumerate(c.turns, 1):
            scripted = turn.role in ("user", "model") and (turn.text is None) != (turn.call is None)
            if not scripted or (turn.call is not None and turn.role != "model"):
                raise KnowledgeBaseError(
                    f"{path.name}: conversation {c.name!r}, turn {n}: a turn is a user's or the "
                    'model\'s "text", or the model\'s "call"; the runtime\'s turns are computed')
    return Script(system=system, tools=tools, conversations=conversations)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KnowledgeBaseError(f"{path} is missing") from exc
    except json.JSONDecodeError as exc:
        raise KnowledgeBaseError(f"{path.name}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise KnowledgeBaseError(f"{path.name}: expected a JSON object")
    return data
