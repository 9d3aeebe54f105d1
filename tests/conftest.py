"""Shared fixtures: the built site (one `mkdocs build --strict` per test session, from a temp
copy of the checkout), a local HTTP server for it, Debian's Chromium driven by Playwright, and a
memo that trains each tiny model once per session. Tests under tests/browser are marked
`browser`; tests that need the built site are marked `build`."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# Keep compiled test modules (with pytest's assertion rewriting) between runs even where the
# environment sets PYTHONDONTWRITEBYTECODE: recompiling every module made collection take
# 10-15 s instead of under one.
sys.dont_write_bytecode = False

from tests.helpers import SharedMemo

ROOT = Path(__file__).resolve().parent.parent
# The session's builds share one results cache, so the site's simulations run once per session.
CACHE_DIR = Path(os.environ.get("EXPLORABLES_CACHE_DIR", ROOT / ".cache" / "explorables"))
CHROMIUM = Path(os.environ.get("EXPLORABLES_CHROMIUM", "/usr/bin/chromium"))
# Flags that keep Chromium from phoning home (its own background requests would fail here and
# would pollute the "no external request" checks).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-default-apps"]
_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "site", ".cache", "node_modules", "__pycache__",
                                      ".pytest_cache", ".site.staging-*")


def pytest_collection_modifyitems(config, items):
    """Mark what drives Chromium (tests/browser) and what builds the whole site (the `site` fixture)."""
    browser_dir = ROOT / "tests" / "browser"
    for item in items:
        if browser_dir in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
        if "site" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.build)


@pytest.fixture(scope="session")
def shared_memo() -> SharedMemo:
    """Each (function, config) computed once per session: the tiny models train once for all modules."""
    return SharedMemo()


def copy_checkout(dest: Path) -> Path:
    """A copy of the checkout without build output; node_modules is linked, not copied."""
    shutil.copytree(ROOT, dest, ignore=_COPY_IGNORE)
    if (ROOT / "node_modules").exists():
        (dest / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    return dest


def mkdocs_build(checkout: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `mkdocs build --strict` in a checkout; the results cache is shared with the real one."""
    full_env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", **(env or {})}
    full_env.setdefault("EXPLORABLES_CACHE_DIR", str(CACHE_DIR))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", *extra],
                          cwd=checkout, env=full_env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The whole site, built once per session with `mkdocs build --strict` from a temp copy."""
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout") / "repo")
    result = mkdocs_build(checkout)
    assert result.returncode == 0, result.stderr[-4000:]
    return checkout / "site"


@pytest.fixture(scope="session")
def site_url(site):
    """The built site served on 127.0.0.1 (a second way in, besides file://)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium under Playwright. Missing: skipped locally, a failure under CI."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must install it (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def rag_inputs():
    """The RAG chapter's inputs from the real content/ (its default grid)."""
    from generator import knowledge_base
    from generator.grids import RagGrid

    return knowledge_base.load(RagGrid(), ROOT / "content")


@pytest.fixture(scope="session")
def rag_results(rag_inputs, shared_memo):
    """The RAG chapter's results, computed once per session for every module that reads them
    (its tiny tool models, and the model they start from, as shipped)."""
    from generator import checkpoints
    from generator.sims import rag

    return rag.simulate(rag_inputs, checkpoints.shipped_memo(shared_memo))
