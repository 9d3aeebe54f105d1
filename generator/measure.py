"""Measured timings as an input of the build, not a side effect of it.

Wall-clock times differ from run to run, so a build that measured them would never be
reproducible. ``python -m generator measure`` takes every timing the grids ask for, each in a
fresh single-threaded Python process (a build's own process swings with whatever else BLAS
threads are doing), and writes them to content/measurements.json with the machine they were
taken on. The build reads that file: two builds of the same checkout give the same bytes. A
timing the file lacks (a grid asking for other lengths) is measured when the build needs it,
with a warning naming the command that records it.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from generator.sims.attention_cost import Timings

log = logging.getLogger("mkdocs.plugins.explorables")

FILE = "measurements.json"  # under content/
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

# What can be timed: name -> the numpy function (module, name) taking the entry's parameters as
# keyword arguments and returning seconds, one per length.
TIMED = {
    "attention": ("generator.sims.attention_cost", "attention_seconds"),
    "decode step": ("generator.sims.kvcache", "decode_step_seconds"),  # seconds: [cached, uncached]
}


_asked: list[tuple[str, dict]] | None = None  # while collecting: every timing a config asks for


def timings(content_dir: Path, kind: str, **params: Any) -> Timings:
    """The timing `kind` with these parameters: from content/measurements.json, or measured now."""
    if _asked is not None:
        _asked.append((kind, _plain(params)))
        return Timings(lengths=tuple(params["lengths"]), seconds=(), measured_on="")
    for entry in read(content_dir).get("timings", []):
        if entry["kind"] == kind and entry["params"] == _plain(params):
            return Timings(lengths=tuple(params["lengths"]), seconds=_tuples(entry["seconds"]),
                           measured_on=read(content_dir)["machine"])
    log.warning("explorables: content/%s has no %s timing for %s; measured now (run "
                "`python -m generator measure` to record it)", FILE, kind, _plain(params))
    return Timings(lengths=tuple(params["lengths"]), seconds=_tuples(measure_one(kind, params)),
                   measured_on=machine())


def read(content_dir: Path) -> dict:
    """content/measurements.json, or an empty record where there is none."""
    path = content_dir / FILE
    if not path.exists():
        return {"machine": machine(), "timings": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"content/{FILE} cannot be read ({exc}); run `python -m generator measure` "
                         "to write it anew") from exc
    if not isinstance(data, dict) or not isinstance(data.get("timings"), list):
        raise ValueError(f"content/{FILE} is not a measurements file; run `python -m generator "
                         "measure` to write it anew")
    return data


def measure_one(kind: str, params: dict) -> list:
    """Run one timing in a fresh Python process whose BLAS uses a single thread."""
    module, name = TIMED[kind]
    code = (f"import json, sys; from {module} import {name}; "
            f"print(json.dumps({name}(**json.loads(sys.argv[1]))))")
    env = {**os.environ, **{var: "1" for var in _ONE_THREAD},
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code, json.dumps(_plain(params))], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"timing {kind} in a subprocess failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def measure_all(configure_all: Callable[[], Any], content_dir: Path) -> Path:
    """Every timing the chapters' configs ask for, measured and written to content/measurements.json."""
    global _asked
    _asked = []
    try:
        configure_all()
        needed = list(dict.fromkeys((kind, json.dumps(p, sort_keys=True)) for kind, p in _asked))
    finally:
        _asked = None
    return write(content_dir, [(kind, json.loads(p)) for kind, p in needed])


def write(content_dir: Path, needed: list[tuple[str, dict]]) -> Path:
    """Measure every (kind, params) and write content/measurements.json at once."""
    entries = []
    for kind, params in needed:
        log.info("measuring %s %s", kind, _plain(params))
        entries.append({"kind": kind, "params": _plain(params), "seconds": measure_one(kind, params)})
    data = {"generated_by": "python -m generator measure", "machine": machine(), "timings": entries}
    path = content_dir / FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def machine() -> str:
    """The machine a timing is taken on, in a few words: CPU, numpy and its BLAS, the date."""
    return (f"{_cpu()}, numpy {np.__version__} with {_blas()}, one thread, Python "
            f"{platform.python_version()}, {datetime.date.today().isoformat()}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except (KeyError, TypeError, ValueError):
        return "its BLAS"


def _tuples(value: Any) -> Any:
    """JSON lists as (nested) tuples: frozen configs hold them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _plain(params: dict) -> dict:
    return json.loads(json.dumps(params, default=lambda v: v.tolist() if hasattr(v, "tolist") else v))
