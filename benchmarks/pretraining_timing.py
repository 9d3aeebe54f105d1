"""How long the tiny-GPT family takes to train, nothing cached: `python benchmarks/pretraining_timing.py`.

Trains every model of the default pretraining grid (or `--grids FILE`, overrides as JSON in the
shape of `extra.grids`) and prints each model's wall-clock and CPU seconds and the family's
total against the 120 s budget for 2 cores. `--quick` trains one model per layer count (the one
with the most heads, the slowest) and estimates the family from it: on a machine other work is
sharing, CPU seconds are the steadier measure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_SECONDS = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grids", type=Path, help="JSON grid overrides, as extra.grids")
    parser.add_argument("--quick", action="store_true", help="one model per layer count, then extrapolate")
    args = parser.parse_args()

    from generator.grids import load_grids
    from generator.sims.pretraining import model_configs
    from generator.sims.train import train_model

    grids = load_grids(json.loads(args.grids.read_text()) if args.grids else None)
    configs = model_configs(grids.pretraining)
    if args.quick:
        most_heads = max(c.n_head for c in configs)
        timed = [c for c in configs if c.n_head == most_heads]
    else:
        timed = configs
    print(f"{'layers':>6} {'heads':>5} {'params':>7} {'wall s':>7} {'cpu s':>7} {'held-out loss':>13}")
    seconds: dict[int, tuple[float, float]] = {}
    for cfg in timed:
        wall, cpu = time.perf_counter(), time.process_time()
        model = train_model(cfg)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        seconds[id(cfg)] = (wall, cpu)
        print(f"{cfg.n_layer:>6} {cfg.n_head:>5} {model.n_params:>7} {wall:>7.1f} {cpu:>7.1f} "
              f"{model.heldout_loss[-1]:>13.3f}", flush=True)
    if args.quick:
        per_depth = {c.n_layer: seconds[id(c)] for c in timed}
        wall = sum(per_depth[c.n_layer][0] for c in configs)
        cpu = sum(per_depth[c.n_layer][1] for c in configs)
        label = f"family of {len(configs)}, estimated from {len(timed)}"
    else:
        wall = sum(w for w, _ in seconds.values())
        cpu = sum(c for _, c in seconds.values())
        label = f"family of {len(configs)}"
    verdict = "within" if cpu <= BUDGET_SECONDS else "OVER"
    print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU ({verdict} the {BUDGET_SECONDS:.0f} s budget)")
    return 0 if cpu <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
