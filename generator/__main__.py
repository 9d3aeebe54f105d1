"""Run the simulations without the site: `python -m generator --help`.

    python -m generator list                 # every grid and its values
    python -m generator specs OUT_DIR        # every chart's Vega-Lite spec as OUT_DIR/<page>/<chart>.vl.json
    python -m generator specs OUT_DIR --grids my-grids.json
    python -m generator measure              # time what the grids ask for: content/measurements.json
    python -m generator train                # train the model family: content/checkpoints (resumable)

Grid overrides use the same shape as `extra.grids` in mkdocs.yml, as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from generator import checkpoints, measure
from generator.build import CONTENT_DIR, build_site
from generator.chapters import CHAPTERS
from generator.cache import Cache
from generator.grids import GridError, load_grids
from generator.pages.render import SPEC_DIR
from generator.sims import rag
from generator.sims.family import model_configs
from generator.publish import PublishError, StagedSite, write_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator", description=__doc__.split("\n")[0])
    parser.add_argument("--grids", type=Path, help="JSON file of grid overrides (as extra.grids)")
    parser.add_argument("--no-cache", action="store_true", help="recompute every simulation")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print every grid and its values")
    specs = sub.add_parser("specs", help="write every chart's Vega-Lite spec to a folder")
    specs.add_argument("out_dir", type=Path)
    sub.add_parser("measure", help="take every timing the grids ask for, one thread each, and "
                                   "write content/measurements.json (the build reads it)")
    trainer = sub.add_parser("train", help="train every model of the family, and fine-tune the RAG "
                                           "chapter's tool models, whose shipped checkpoint is missing "
                                           "or stale, 2 at a time, resuming an interrupted run")
    trainer.add_argument("--all", action="store_true", help="retrain every model, stale or not")
    trainer.add_argument("--workers", type=int, default=2, help="models trained at once (default 2)")
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

    if args.command == "train":
        tools = rag.tool_trainings(grids.rag, grids.pretraining)
        written = checkpoints.train_family(model_configs(grids.pretraining) + tools, workers=args.workers,
                                           everything=args.all)
        print(f"shipped {len(written)} model(s) to {checkpoints.CHECKPOINT_DIR}")
        return 0

    if args.command == "measure":
        path = measure.measure_all(lambda: [c.configure(grids, c.name, CONTENT_DIR) for c in CHAPTERS],
                                   CONTENT_DIR)
        print(f"wrote {path}")
        return 0

    site = build_site(grids, Cache(enabled=not args.no_cache))
    try:
        write_specs(site.files, args.out_dir)
    except (FileExistsError, PublishError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = sum(1 for p in site.files if p.startswith(SPEC_DIR + "/"))
    print(f"wrote {count} specs to {args.out_dir}")
    return 0


MARKER = ".explorables-specs"


def write_specs(files: dict[str, str | bytes], out_dir: Path) -> None:
    """Write the spec files into out_dir all at once, through the site's staging and swap.

    An existing out_dir is replaced only if it is empty or was written by this command before.
    """
    staged = StagedSite(out_dir)
    staging = staged.begin()
    try:
        out = staged.site_dir
        if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
            raise FileExistsError(f"{out} exists and was not written by this command; "
                                  "choose an empty or new folder")
        specs = {path.removeprefix(SPEC_DIR + "/"): content for path, content in files.items()
                 if path.startswith(SPEC_DIR + "/")}
        specs[MARKER] = "Written by `python -m generator specs`; replaced on rerun.\n"
        staged.commit(write_files(staging, specs))
    except BaseException:
        staged.abort()
        raise


if __name__ == "__main__":
    sys.exit(main())
