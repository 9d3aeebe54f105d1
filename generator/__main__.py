"""Run the simulations without the site: `python -m generator --help`.

    python -m generator list                 # every grid and its values
    python -m generator specs OUT_DIR        # every chart's Vega-Lite spec as OUT_DIR/<page>/<chart>.vl.json
    python -m generator specs OUT_DIR --grids my-grids.json

Grid overrides use the same shape as `extra.grids` in mkdocs.yml, as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from generator.build import build_site
from generator.cache import Cache
from generator.grids import GridError, load_grids
from generator.pages.render import SPEC_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator", description=__doc__.split("\n")[0])
    parser.add_argument("--grids", type=Path, help="JSON file of grid overrides (as extra.grids)")
    parser.add_argument("--no-cache", action="store_true", help="recompute every simulation")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print every grid and its values")
    specs = sub.add_parser("specs", help="write every chart's Vega-Lite spec to a folder")
    specs.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        overrides = json.loads(args.grids.read_text()) if args.grids else None
        grids = load_grids(overrides)
    except (GridError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.command == "list":
        for name, grid in dataclasses.asdict(grids).items():
            print(f"[{name}]")
            for key, value in grid.items():
                print(f"  {key} = {json.dumps(value)}")
        return 0

    site = build_site(grids, Cache(enabled=not args.no_cache))
    try:
        write_specs(site.files, args.out_dir)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = sum(1 for p in site.files if p.startswith(SPEC_DIR + "/"))
    print(f"wrote {count} specs to {args.out_dir}")
    return 0


MARKER = ".explorables-specs"


def write_specs(files: dict[str, str | bytes], out_dir: Path) -> None:
    """Write the spec files into out_dir all at once (a temp dir, then a rename).

    An existing out_dir is replaced only if it is empty or was written by this command before.
    """
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise FileExistsError(f"{out_dir} exists and was not written by this command; "
                              "choose an empty or new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        for path, content in files.items():
            if not path.startswith(SPEC_DIR + "/"):
                continue
            target = staging / path.removeprefix(SPEC_DIR + "/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content) if isinstance(content, str) else target.write_bytes(content)
        (staging / MARKER).write_text("Written by `python -m generator specs`; replaced on rerun.\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
