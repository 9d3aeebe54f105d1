"""Third-party browser files, taken from installed registry packages at build time.

- Vega, Vega-Lite and vega-embed: the single-file bundle that the PyPI package
  vl-convert-python ships (it sets ``window.vegaEmbed``), cached by its version.
- iframe-worker's shim (npm package, installed by ``npm ci``): lets Material's search worker
  run on pages opened from file://.

Nothing is fetched from the network and nothing is copied into the repository.
"""

from __future__ import annotations

from pathlib import Path

from generator.cache import Cache

ROOT = Path(__file__).resolve().parent.parent
VEGA_BUNDLE = "assets/vendor/vega-bundle.js"
IFRAME_WORKER = "assets/vendor/iframe-worker/shim.js"
IFRAME_WORKER_SOURCE = ROOT / "node_modules" / "iframe-worker" / "shim" / "index.js"


class MissingAssetError(RuntimeError):
    """A third-party file the site needs is not installed."""


def vendor_files(cache: Cache) -> dict[str, bytes]:
    """Every third-party file the built site serves, by site path."""
    return {VEGA_BUNDLE: vega_bundle(cache), IFRAME_WORKER: iframe_worker_shim()}


def vega_bundle(cache: Cache) -> bytes:
    """vega + vega-lite + vega-embed as one classic script, from vl-convert-python."""
    try:
        import vl_convert
    except ImportError as exc:
        raise MissingAssetError(
            "vl-convert-python is not installed: run `pip install -r requirements.txt`") from exc
    return cache.blob("vega-bundle", [vl_convert.__version__],
                      lambda: vl_convert.javascript_bundle().encode())


def iframe_worker_shim() -> bytes:
    """The iframe-worker shim, from node_modules (installed by `npm ci`)."""
    if not IFRAME_WORKER_SOURCE.is_file():
        raise MissingAssetError(
            f"{IFRAME_WORKER_SOURCE.relative_to(ROOT)} is missing: run `npm ci` at the top of "
            "the checkout (it installs the iframe-worker shim that offline search needs)")
    return IFRAME_WORKER_SOURCE.read_bytes()
