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


def _config(**changes) -> WithFamily:
    """CONFIG with its sampling grid changed."""
    return WithFamily(dataclasses.replace(CONFIG.grid, **changes), TINY_FAMILY)


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
    cache.result(sampling.simulate, _config(seed=1))
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


# ---------------------------------------------------------------------------------------------
# A table of corruptions: every one is recomputed with a warning, never raised, never served


def _entries(root):
    return {p.name.split("-")[0]: p for p in (root / "results").glob("*.npz")}


def _resign(npz, **changes):
    import hashlib
    import json

    sidecar = npz.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta.update(sha256=hashlib.sha256(npz.read_bytes()).hexdigest(), **changes)
    sidecar.write_text(json.dumps(meta))


def _swap(a, b):
    for suffix in (a.suffix, ".json"):
        pa, pb = a.with_suffix(suffix), b.with_suffix(suffix)
        tmp = pa.with_name("swap.tmp")
        pa.rename(tmp)
        pb.rename(pa)
        tmp.rename(pb)


def _corrupt(case, sampling_npz, other_npz):
    import json

    sidecar = sampling_npz.with_suffix(".json")
    data = sampling_npz.read_bytes()
    if case == "swapped with another entry (npz and sidecar)":
        _swap(sampling_npz, other_npz)
    elif case == "sidecar holds []":
        sidecar.write_text("[]")
    elif case == "sidecar holds a string":
        sidecar.write_text('"ok"')
    elif case == "sidecar of the old format (checksum only)":
        meta = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({"format": meta["format"], "sha256": meta["sha256"]}))
    elif case == "entry of another type, re-signed with this key":
        key = json.loads(sidecar.read_text())["key"]
        sampling_npz.write_bytes(other_npz.read_bytes())
        _resign(sampling_npz, key=key)
    elif case == "entry of another type, sidecar claiming the right type":
        meta = json.loads(sidecar.read_text())
        sampling_npz.write_bytes(other_npz.read_bytes())
        _resign(sampling_npz, key=meta["key"], type=meta["type"])
    elif case == "truncated npz, re-signed":
        sampling_npz.write_bytes(data[: len(data) // 2])
        _resign(sampling_npz)
    elif case == "empty npz, re-signed":
        sampling_npz.write_bytes(b"")
        _resign(sampling_npz)
    elif case == "npz of random bytes, re-signed":
        sampling_npz.write_bytes(bytes(range(256)) * 8)
        _resign(sampling_npz)
    elif case == "skeleton names a class outside the package, re-signed":
        import io

        with np.load(io.BytesIO(data)) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["__skeleton__"] = np.array(str(arrays["__skeleton__"]).replace(
            "generator.sims.sampling:", "os:", 1))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        sampling_npz.write_bytes(buf.getvalue())
        _resign(sampling_npz)
    elif case == "skeleton with a field removed, re-signed":
        import io

        with np.load(io.BytesIO(data)) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["__skeleton__"] = np.array(str(arrays["__skeleton__"]).replace('"probs"', '"gone"', 1))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        sampling_npz.write_bytes(buf.getvalue())
        _resign(sampling_npz)
    elif case == "sidecar is a folder":
        sidecar.unlink()
        sidecar.mkdir()
    elif case == "sidecar not UTF-8":
        sidecar.write_bytes(b"\xff\xfe\x00")
    elif case == "sidecar of another format number":
        _resign(sampling_npz, format=99)
    else:
        raise AssertionError(case)


CORRUPTIONS = ["swapped with another entry (npz and sidecar)", "sidecar holds []",
               "sidecar holds a string", "sidecar of the old format (checksum only)",
               "entry of another type, re-signed with this key",
               "entry of another type, sidecar claiming the right type",
               "truncated npz, re-signed", "empty npz, re-signed", "npz of random bytes, re-signed",
               "skeleton names a class outside the package, re-signed",
               "skeleton with a field removed, re-signed", "sidecar is a folder",
               "sidecar not UTF-8", "sidecar of another format number"]


def _grid_of(config):
    """Stands in for a simulation of another module whose result is of another type."""
    return SamplingGrid(seed=5)


_grid_of.__module__ = "generator.sims.tokenization"


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_a_corrupted_or_foreign_entry_is_recomputed_with_a_warning(tmp_path, case, caplog):
    from generator.cache import result_key

    cache = Cache(tmp_path)
    good = cache.result(sampling.simulate, CONFIG)
    cache.result(sampling.simulate, _config(seed=1))  # the same type under another key
    cache.result(_grid_of, SamplingGrid())  # another type (a grid dataclass) under another key
    results = tmp_path / "results"
    entry = results / f"sampling-{result_key(sampling.simulate, CONFIG)[:24]}.npz"
    other = (next(results.glob("tokenization-*.npz")) if "another type" in case else
             results / f"sampling-{result_key(sampling.simulate, _config(seed=1))[:24]}.npz")
    _corrupt(case, entry, other)
    with caplog.at_level("WARNING", logger="explorables.cache"):
        again = Cache(tmp_path)
        value = again.result(sampling.simulate, CONFIG)
    assert again.misses == ["generator.sims.sampling.simulate"], "never served"
    assert type(value) is type(good) and np.array_equal(value.probs, good.probs)
    assert "recomputing" in caplog.text
    third = Cache(tmp_path)
    assert np.array_equal(third.result(sampling.simulate, CONFIG).probs, good.probs)
    assert third.hits == ["generator.sims.sampling.simulate"], "and the entry was rewritten whole"


@pytest.mark.parametrize("case", ["sidecar holds []", "swapped with another entry (npz and sidecar)",
                                  "truncated npz, re-signed"])
def test_a_corrupted_blob_is_recomputed(tmp_path, case):
    cache = Cache(tmp_path)
    cache.json("specs", ["a"], lambda: {"chart": "a"})
    cache.json("specs", ["b"], lambda: {"chart": "b"})
    blobs = sorted((tmp_path / "blobs").glob("*.bin"))
    from generator.cache import _digest

    entry = tmp_path / "blobs" / f"specs-{_digest(['a'])[:24]}.bin"
    _corrupt(case, entry, next(b for b in blobs if b != entry))
    again = Cache(tmp_path)
    assert again.json("specs", ["a"], lambda: {"chart": "a"}) == {"chart": "a"}
    assert again.misses == ["specs"]


def _read_only(monkeypatch, root):
    """Every write under root fails as on a read-only file system (root ignores chmod)."""
    import errno
    import os
    import tempfile

    def guard(real):
        def call(*args, **kwargs):
            paths = [a for a in args if isinstance(a, (str, os.PathLike))] + \
                [v for v in kwargs.values() if isinstance(v, (str, os.PathLike))]
            if any(str(p).startswith(str(root)) for p in paths):
                raise OSError(errno.EROFS, "Read-only file system", str(paths[0]))
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(tempfile, "mkstemp", guard(tempfile.mkstemp))
    monkeypatch.setattr(os, "replace", guard(os.replace))
    monkeypatch.setattr(os, "unlink", guard(os.unlink))
    monkeypatch.setattr(os, "mkdir", guard(os.mkdir))


def test_a_read_only_cache_serves_its_hits_and_computes_the_rest_without_saving(tmp_path, monkeypatch,
                                                                                 caplog):
    Cache(tmp_path).result(sampling.simulate, CONFIG)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _read_only(monkeypatch, tmp_path)
    with caplog.at_level("WARNING", logger="explorables.cache"):
        cache = Cache(tmp_path)
        cache.result(sampling.simulate, CONFIG)
        cache.result(sampling.simulate, _config(seed=1))  # a miss: computed, not saved
        cache.result(sampling.simulate, _config(seed=2))
        assert cache.blob("thing", ["v1"], lambda: b"x") == b"x"
        assert cache.directory("templates") is None  # compiled templates are not kept either
    assert cache.hits == ["generator.sims.sampling.simulate"] and len(cache.misses) == 3
    assert caplog.text.count("cannot be written") == 1, "one warning, not one per entry"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_corrupted_entry_in_a_read_only_cache_is_recomputed_not_raised(tmp_path, monkeypatch):
    Cache(tmp_path).result(sampling.simulate, CONFIG)
    (entry,) = (tmp_path / "results").glob("*.npz")
    entry.with_suffix(".json").write_text("[]")
    _read_only(monkeypatch, tmp_path)
    cache = Cache(tmp_path)
    cache.result(sampling.simulate, CONFIG)
    assert cache.misses == ["generator.sims.sampling.simulate"]
