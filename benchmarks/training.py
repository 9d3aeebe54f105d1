"""Training throughput of the tiny GPTs against what numpy's matmul reaches: `python benchmarks/training.py`.

For each model (`--models 2x4x64,...`: layers x heads x width; default the recommended family)
it times whole training steps (forward, backward, AdamW) on story windows, single-threaded
(OPENBLAS_NUM_THREADS=1 is set before numpy loads) in CPU seconds of this process, the
steadier measure on a machine other work is sharing (wall time inflates with the load; one
thread's CPU time does not, apart from cache effects), and prints:
- training FLOP/s: (6 * parameters * tokens + attention) / seconds per step, where attention is
  Q K^T and W V over the full n_seq x n_seq square (forward 4 * n_seq^2 * n_embd per layer and
  sequence, times 3 for forward and backward);
- the float32 matmul FLOP/s numpy reaches on the same machine at the model's own forward
  shapes ([n_batch * n_seq, n_embd] x [n_embd, 3 n_embd], ..., x [n_embd, n_vocab]), one thread;
- their ratio (target >= 50%), and where a step's time goes: forward, backward, optimiser.
Steps per second on 2 cores are extrapolated as twice one core's (two models trained side by
side, one per core), which is what a family trained model by model in two processes gets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SHARE = 0.5
DEFAULT_MODELS = "1x2x32,2x2x32,4x2x32,1x4x64,2x4x64,4x4x64"  # the family (grids.pretraining)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="layers x heads x width, comma separated")
    parser.add_argument("--n-ctx", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per model (after 2 untimed)")
    args = parser.parse_args()

    import numpy as np

    from generator.sims.gpt import cross_entropy, gpt, gpt_backward, init_params, leaves, n_params
    from generator.sims.train import AdamW, DataConfig, make_data, windows

    data = make_data(DataConfig(n_ctx=args.n_ctx, train_stories=2000, heldout_stories=8, seed=0))
    rng = np.random.default_rng(0)
    n_vocab, n_seq, n_batch = len(data.vocab), args.n_ctx, args.batch
    print(f"one thread; n_ctx {n_seq}, batch {n_batch}, vocabulary {n_vocab}")
    print(f"{'model':>9} {'params':>8} {'s/step':>7} {'fwd':>5} {'bwd':>5} {'adam':>5} "
          f"{'GFLOP/s':>8} {'matmul':>7} {'share':>6}")
    worst = 1.0
    for spec in args.models.split(","):
        n_layer, n_head, n_embd = (int(v) for v in spec.split("x"))
        params = init_params(n_vocab, n_seq, n_embd, n_layer, rng)
        optimiser = AdamW(params, 0.1)
        times = {"fwd": [], "bwd": [], "adam": []}
        for step in range(args.steps + 2):
            x, y = windows(data.train_ids, rng.choice(data.train_starts, n_batch), n_seq)
            t0 = time.process_time()
            trace = gpt(x, params, n_head)
            _, dlogits = cross_entropy(trace.logits, y)
            t1 = time.process_time()
            grads = leaves(gpt_backward(dlogits, trace, params))
            t2 = time.process_time()
            optimiser.step(grads, 1e-4)
            t3 = time.process_time()
            if step >= 2:
                for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                    times[key].append(dt)
        parts = {k: float(np.median(v)) for k, v in times.items()}
        per_step = sum(parts.values())
        flops = training_flops(n_params(params), n_layer, n_embd, n_seq, n_batch)
        matmul = matmul_flops_per_second(n_batch * n_seq, n_embd, n_vocab)
        share = flops / per_step / matmul
        worst = min(worst, share)
        print(f"{spec:>9} {n_params(params):>8} {per_step:>7.3f} "
              + " ".join(f"{parts[k] / per_step:>5.0%}" for k in times)
              + f" {flops / per_step / 1e9:>8.1f} {matmul / 1e9:>7.1f} {share:>6.0%}", flush=True)
    verdict = "meets" if worst >= TARGET_SHARE else "BELOW"
    print(f"lowest share of matmul throughput: {worst:.0%} ({verdict} the {TARGET_SHARE:.0%} target)")
    return 0


def training_flops(n_params, n_layer, n_embd, n_seq, n_batch) -> float:
    """6 N per token for the weights, plus Q K^T and W V forward and backward, per step."""
    attention = 3 * n_layer * 4 * n_seq * n_seq * n_embd * n_batch
    return 6.0 * n_params * n_seq * n_batch + attention


def matmul_flops_per_second(n_rows, n_embd, n_vocab, repeats=20) -> float:
    """float32 FLOP/s of the forward pass's matmuls at its own shapes, best of `repeats`."""
    import numpy as np

    rng = np.random.default_rng(1)
    shapes = [(n_embd, 3 * n_embd), (n_embd, n_embd), (n_embd, 4 * n_embd), (4 * n_embd, n_embd),
              (n_embd, n_vocab)]
    total_flops, total_seconds = 0.0, 0.0
    for k, n in shapes:
        a = rng.standard_normal((n_rows, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        best = float("inf")
        for _ in range(repeats):
            t = time.process_time()
            a @ b
            best = min(best, time.process_time() - t)
        total_flops += 2.0 * n_rows * k * n
        total_seconds += best
    return total_flops / total_seconds


if __name__ == "__main__":
    sys.exit(main())
