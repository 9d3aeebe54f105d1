"""On-disk cache of simulation results, keyed by the config and the code that computes them.

A result is a dataclass whose fields are numpy arrays, JSON-able values (numbers, strings,
tuples, dicts) or further such dataclasses. It is stored as one ``.npz`` (arrays, plus the
JSON skeleton) and a ``.json`` sidecar that says what the entry is: the npz's sha256, the full
key and the result's type. Both are written to a temp file and renamed into place, so an
interrupted build leaves no partial entry. An entry is served only if its bytes match its
sidecar, the sidecar names the key looked up and the type expected, and it loads as that type;
anything else (a damaged, swapped or foreign entry) is deleted and recomputed with a warning,
never raised. A cache folder that cannot be written is read from, and the build goes on
without saving (one warning).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

log = logging.getLogger("explorables.cache")

T = TypeVar("T")

FORMAT_VERSION = 1
_PACKAGE = "generator"
# Only simulation code decides a result; a grid's value is part of the key already, so edits
# to grids.py (say, a new chapter's grid) do not invalidate every cached result.
_CODE_SCOPE = "generator.sims"


def default_cache_dir() -> Path:
    """EXPLORABLES_CACHE_DIR, or .cache/explorables at the top of the checkout."""
    env = os.environ.get("EXPLORABLES_CACHE_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".cache" / "explorables"


class Cache:
    """Results cache in one directory; ``hits`` and ``misses`` count this run's look-ups."""

    def __init__(self, root: Path | str | None = None, *, enabled: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.writable = True  # False after a write failed: the rest of the run saves nothing
        self.hits: list[str] = []
        self.misses: list[str] = []

    # -- results of simulations ---------------------------------------------------------------

    def result(self, fn: Callable[..., T], config: Any, *,
               compute: Callable[[Any], T] | None = None, inputs: str = "") -> T:
        """fn(config), from the cache when an intact entry for (config, fn's code) exists.

        `compute(config)` stands in for fn(config) when fn needs more than the config (say, a
        memo for its parts); the entry is still keyed by fn's name and code. `inputs` names
        anything else the result depends on (say, the digest of files it reads) and joins the key.
        """
        name = f"{fn.__module__}.{fn.__qualname__}"
        key = result_key(fn, config) if not inputs else _digest([result_key(fn, config), inputs])
        path = self.root / "results" / f"{fn.__module__.rsplit('.', 1)[-1]}-{key[:24]}.npz"
        expected = _return_type(fn)
        if self.enabled:
            cached = self._read(path, key, expected)
            if cached is not None:
                try:
                    value = _unpack(cached)
                    if expected is not None and _type_name(type(value)) != expected:
                        raise TypeError(f"holds a {_type_name(type(value))}, not a {expected}")
                except Exception as exc:  # whatever a damaged entry raises, it is recomputed
                    log.warning("cache entry %s unreadable (%s); recomputing", path.name, exc)
                    self._discard(path)
                else:
                    self.hits.append(name)
                    return value
        self.misses.append(name)
        value = (compute or fn)(config)
        if self.enabled:
            self._write(path, _pack(value), key, _type_name(type(value)))
        return value

    # -- opaque bytes (e.g. a JavaScript bundle) -------------------------------------------------

    def blob(self, name: str, key_parts: list[str], produce: Callable[[], bytes]) -> bytes:
        """produce(), from the cache when an intact entry for key_parts exists."""
        key = _digest(key_parts)
        path = self.root / "blobs" / f"{name}-{key[:24]}.bin"
        if self.enabled:
            cached = self._read(path, key, "bytes")
            if cached is not None:
                self.hits.append(name)
                return cached
        self.misses.append(name)
        value = produce()
        if self.enabled:
            self._write(path, value, key, "bytes")
        return value

    def json(self, name: str, key_parts: list[str], produce: Callable[[], Any]) -> Any:
        """produce() for JSON-able values (e.g. chart specs), through the blob cache."""
        def encoded() -> bytes:
            return json.dumps(produce(), separators=(",", ":")).encode()

        try:
            return json.loads(self.blob(name, key_parts, encoded))
        except ValueError as exc:  # checksummed, so a re-signed or foreign entry
            path = self.root / "blobs" / f"{name}-{_digest(key_parts)[:24]}.bin"
            log.warning("cache entry %s unreadable (%s); recomputing", path.name, exc)
            self._discard(path)
            return json.loads(self.blob(name, key_parts, encoded))

    def directory(self, name: str) -> Path | None:
        """A writable folder in the cache for files kept between builds; None if there is none."""
        if not self.enabled or not self.writable:
            return None
        folder = self.root / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            self._read_only(exc)
            return None
        return folder

    # -- storage -------------------------------------------------------------------------------

    def _read(self, path: Path, key: str, kind: str | None) -> bytes | None:
        """The entry's bytes if its sidecar vouches for them, this key and this kind; else None."""
        sidecar = path.with_suffix(".json")
        try:
            data = path.read_bytes()
            meta = json.loads(sidecar.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("cache entry %s unreadable (%s); recomputing", path.name, exc)
            self._discard(path)
            return None
        problem = _mismatch(meta, data, key, kind)
        if problem:
            log.warning("cache entry %s %s; recomputing", path.name, problem)
            self._discard(path)
            return None
        return data

    def _write(self, path: Path, data: bytes, key: str, kind: str) -> None:
        if not self.writable:
            return
        meta = {"format": FORMAT_VERSION, "sha256": hashlib.sha256(data).hexdigest(),
                "key": key, "type": kind}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
            atomic_write(path.with_suffix(".json"), json.dumps(meta).encode())
        except OSError as exc:
            self._read_only(exc)

    def _discard(self, path: Path) -> None:
        for p in (path, path.with_suffix(".json")):
            try:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
            except OSError:  # a read-only cache keeps the entry; it is just never served
                pass

    def _read_only(self, exc: OSError) -> None:
        if self.writable:
            log.warning("cache folder %s cannot be written (%s); building without saving results",
                        self.root, exc)
        self.writable = False


def _mismatch(meta: Any, data: bytes, key: str, kind: str | None) -> str:
    """Why a sidecar does not vouch for these bytes as this key's entry of this kind ("" if it does)."""
    if not isinstance(meta, dict):
        return f"has a sidecar holding a {type(meta).__name__}, not an object"
    if meta.get("format") != FORMAT_VERSION:
        return f"has format {meta.get('format')!r}, not {FORMAT_VERSION}"
    if meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return "is corrupted (checksum mismatch)"
    if "key" not in meta:
        return "has a sidecar from before keys were recorded"
    if meta.get("key") != key:
        return "belongs to another key (swapped or renamed)"
    if kind is not None and meta.get("type") != kind:
        return f"holds a {meta.get('type')!r}, not a {kind!r}"
    return ""


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _return_type(fn: Callable) -> str | None:
    """The class fn is annotated to return, as stored in sidecars; None if it names no class."""
    import typing

    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that does not resolve only skips the check
        return None
    return _type_name(hint) if isinstance(hint, type) else None


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to path through a temp file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Keys


def _digest(parts: list[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def result_key(fn: Callable, config: Any) -> str:
    """The cache key of fn(config): its name, the config's value and the sims code behind it."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    return _digest([name, _config_fingerprint(config), code_fingerprint(fn.__module__)])


def _config_fingerprint(config: Any) -> str:
    return json.dumps(_keyed(config), sort_keys=True, default=repr)


def _keyed(value: Any) -> Any:
    """A config as plain data for its key: dataclass fields marked metadata={"key": False} (live
    objects such as a loaded tokenizer, whose identity other fields give) are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _keyed(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("key", True)}
    if isinstance(value, (list, tuple)):
        return [_keyed(v) for v in value]
    if isinstance(value, dict):
        return {k: _keyed(v) for k, v in value.items()}
    return value


def code_fingerprint(module_name: str, scopes: tuple[str, ...] = (_CODE_SCOPE,)) -> str:
    """sha256 over the source of a module and every module under `scopes` it imports, transitively."""
    seen: dict[str, str] = {}
    todo = [module_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        # Read the file itself: inspect.getsource refuses empty files such as an __init__.py.
        path = Path(importlib.import_module(name).__file__)
        stat = path.stat()
        digest, imports = _module_info(name, str(path), stat.st_mtime_ns, stat.st_size)
        seen[name] = digest
        todo.extend(n for n in imports if any(n == s or n.startswith(s + ".") for s in scopes))
    return _digest([f"{n}\n{seen[n]}" for n in sorted(seen)])


_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<base>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^\n#]+)"
    r"|import[ \t]+(?P<modules>[^\n#]+))", re.M)


@functools.lru_cache(maxsize=1024)
def _module_info(name: str, path: str, mtime_ns: int, size: int) -> tuple[str, tuple[str, ...]]:
    """A module file's sha256 and the project modules it imports; memoised per file version.

    Imports are found line by line (an import-like line in a docstring only adds a module to
    the fingerprint, which is harmless); parsing every file's syntax tree costs far more.
    """
    source = Path(path).read_text(encoding="utf-8")
    is_package = Path(path).name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for m in _IMPORT.finditer(source):
        if m["modules"]:
            found += [_first_word(part) for part in m["modules"].split(",")]
            continue
        base = m["base"]
        level = len(base) - len(base.lstrip("."))
        base = base.lstrip(".")
        if level:
            parent = package.rsplit(".", level - 1)[0] if level > 1 else package
            base = f"{parent}.{base}" if base else parent
        found.append(base)
        found += [f"{base}.{_first_word(part)}" for part in m["names"].strip("()").split(",") if part.strip()]
    project = [n for n in dict.fromkeys(found) if n.split(".")[0] == _PACKAGE and _is_module(n)]
    return hashlib.sha256(source.encode()).hexdigest(), tuple(project)


def _first_word(text: str) -> str:
    return text.split()[0] if text.split() else ""


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Packing results: arrays into the npz, everything else into a JSON skeleton


def _pack(value: Any) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    skeleton = _to_skeleton(value, arrays)
    buf = io.BytesIO()
    np.savez(buf, __skeleton__=np.array(json.dumps(skeleton)), **arrays)
    return buf.getvalue()


def _unpack(data: bytes) -> Any:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    skeleton = json.loads(str(arrays.pop("__skeleton__")))
    return _from_skeleton(skeleton, arrays)


def _to_skeleton(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {f.name: _to_skeleton(getattr(value, f.name), arrays) for f in dataclasses.fields(value)}
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    if isinstance(value, tuple):
        return {"__tuple__": [_to_skeleton(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_to_skeleton(v, arrays) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("cached dicts need string keys")
        return {"__dict__": {k: _to_skeleton(v, arrays) for k, v in value.items()}}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _from_skeleton(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(node, list):
        return [_from_skeleton(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        return arrays[node["__array__"]]
    if "__tuple__" in node:
        return tuple(_from_skeleton(v, arrays) for v in node["__tuple__"])
    if "__dict__" in node:
        return {k: _from_skeleton(v, arrays) for k, v in node["__dict__"].items()}
    if "__dataclass__" in node:
        module_name, _, qualname = node["__dataclass__"].partition(":")
        if module_name.split(".")[0] != _PACKAGE:
            raise ValueError(f"refusing to rebuild {module_name}:{qualname} from the cache")
        cls: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        fields = {k: _from_skeleton(v, arrays) for k, v in node["fields"].items()}
        return cls(**fields)
    raise ValueError("unknown node in cache skeleton")
