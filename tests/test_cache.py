"""The results cache: hits, keys that follow config and code, corruption never served."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.cache import Cache, code_fingerprint
from generator.grids import SamplingGrid
from generator.sims import sampling
from generator.sims.family import WithFamily
from tests.helpers import TINY_FAMILY

# Sampling over the tiny family (its models train in a fraction of a second).
CONFIG = WithFamily(SamplingGrid(model_prompt="once upon a time , there was"), TINY_FAMILY)


def test_second_lookup_is_a_hit_with_identical_results(tmp_path):
    cache = Cache(tmp_path)
    first = cache.result(sampling.simulate, CONFIG)
    second = cache.result(sampling.simulate, CONFIG)
    assert cache.misses == ["generator.sims.sampling.simulate"]
    assert cache.hits == ["generator.sims.sampling.simulate"]
    assert type(second) is type(first)
    assert type(second.top_k) is type(first.top_k)
    assert second.tokens == first.tokens and isinstance(second.tokens, tuple)
    for field in ("probs", "entropy", "counts", "base_probs"):
        assert np.array_equal(getattr(first, field), getattr(second, field))
    assert np.array_equal(first.top_p.keep, second.top_p.keep)
    assert type(second.model) is type(first.model) and type(second.facts) is type(first.facts)
    assert np.array_equal(first.model.probs, second.model.probs)


def test_a_different_config_is_a_different_entry(tmp_path):
    cache = Cache(tmp_path)
    cache.result(sampling.simulate, CONFIG)
    cache.result(sampling.simulate, WithFamily(dataclasses.replace(CONFIG.grid, seed=1), TINY_FAMILY))
    assert cache.hits == [] and len(cache.misses) == 2


def test_code_fingerprint_follows_the_source_of_the_module_and_its_sims_imports(monkeypatch):
    from pathlib import Path

    import generator.sims.sampling as sampling_module

    base = code_fingerprint("generator.sims.sampling")
    real = Path.read_text

    def edited(target):
        def read_text(self, *args, **kwargs):
            text = real(self, *args, **kwargs)
            return text + "\n# edited\n" if self == Path(target) else text
        return read_text

    from generator.cache import _module_info

    monkeypatch.setattr(Path, "read_text", edited(sampling_module.__file__))
    _module_info.cache_clear()  # files are memoised by (path, mtime, size); the edit keeps those
    assert code_fingerprint("generator.sims.sampling") != base
    # grids.py is not simulation code: the grid's value is in the key already
    import generator.grids as grids_module

    monkeypatch.setattr(Path, "read_text", edited(grids_module.__file__))
    _module_info.cache_clear()
    assert code_fingerprint("generator.sims.sampling") == base
    _module_info.cache_clear()


def test_code_fingerprint_reads_empty_package_modules():
    assert code_fingerprint("generator.sims")


@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar"])
def test_a_corrupted_entry_is_recomputed_not_served(tmp_path, damage):
    cache = Cache(tmp_path)
    good = cache.result(sampling.simulate, CONFIG)
    (entry,) = (tmp_path / "results").glob("*.npz")
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        entry.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        entry.with_suffix(".json").write_text("{not json")
    again = Cache(tmp_path)
    value = again.result(sampling.simulate, CONFIG)
    assert again.misses == ["generator.sims.sampling.simulate"]
    assert np.array_equal(value.probs, good.probs)
    # and the entry was rewritten whole
    third = Cache(tmp_path)
    third.result(sampling.simulate, CONFIG)
    assert third.hits == ["generator.sims.sampling.simulate"]


def test_no_temp_files_are_left_behind(tmp_path):
    Cache(tmp_path).result(sampling.simulate, CONFIG)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_blob_cache_round_trip(tmp_path):
    calls = []
    cache = Cache(tmp_path)
    produce = lambda: calls.append(1) or b"payload"  # noqa: E731
    assert cache.blob("thing", ["v1"], produce) == b"payload"
    assert cache.blob("thing", ["v1"], produce) == b"payload"
    assert cache.blob("thing", ["v2"], produce) == b"payload"
    assert len(calls) == 2


def test_a_failing_simulation_writes_nothing(tmp_path):
    def broken(config):
        raise RuntimeError("boom")

    broken.__module__ = "generator.sims.sampling"
    with pytest.raises(RuntimeError):
        Cache(tmp_path).result(broken, SamplingGrid())
    assert not list(tmp_path.rglob("*.npz"))


def test_import_scan_finds_every_project_import_the_syntax_tree_has():
    """The fast line scan behind code fingerprints against a full parse, on every module."""
    import ast
    from pathlib import Path

    from generator.cache import _is_module, _module_info
    from tests.conftest import ROOT

    for path in sorted((ROOT / "generator").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        expected = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                expected |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                expected |= {base} | {f"{base}.{a.name}" for a in node.names}
        expected = {n for n in expected if n.split(".")[0] == "generator" and _is_module(n)}
        stat = path.stat()
        found = set(_module_info(name, str(path), stat.st_mtime_ns, stat.st_size)[1])
        assert expected <= found, (name, expected - found)
