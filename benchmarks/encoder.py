"""Profile of the GNN encoder at prediction (the largest cost of ``molddl predict`` after
featurization): time per molecule, the top operators, and the categorical embedding as one
lookup per column against one ``embedding_bag``, in the same run.

    python benchmarks/encoder.py [--model runs/bench/tox21-default.pt] [--molecules 4096]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, machine  # noqa: E402

from molddl.models.estimator import DualLabelModel  # noqa: E402
from molddl.pipeline import load_splits  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("runs/bench/tox21-default.pt"))
    p.add_argument("--molecules", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    if not args.model.exists():
        raise SystemExit(
            f"{args.model}: run benchmarks/alternate_inference.py first (it trains it)"
        )
    model = DualLabelModel.load(args.model)
    cfg = model.config_
    _, _, test = load_splits(dataclasses.replace(cfg.data, split_fractions=[0.0, 0.0, 1.0]), 0)
    prep = model.preprocessor_.transform(test)
    n = min(args.molecules, len(prep))
    batch = prep.batch(np.arange(n))[0]
    encoder = model.net_.encoder.eval()

    with torch.inference_mode():
        total = best_of(lambda: encoder(batch), args.repeat)
        rows = []
        for name, emb, x in (
            ("atoms", encoder.atom, batch.x),
            ("bonds", encoder.bond, batch.edge_attr),
        ):
            if emb is None or not emb.categorical:
                continue
            per_column = best_of(
                lambda e=emb, x=x: sum(t(x[:, j]) for j, t in enumerate(e.tables)), args.repeat
            )
            w = torch.cat([t.weight for t in emb.tables])
            bag = best_of(lambda e=emb, x=x, w=w: F.embedding_bag(x + e.offsets, w, mode="sum"),
                          args.repeat)  # fmt: skip
            rows.append((name, x.shape, per_column, bag))
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            encoder(batch)

    print(f"machine: {machine()}")
    print(f"model: {args.model} ({cfg.model.encoder}, hidden {cfg.model.hidden}, "
          f"{cfg.model.layers} layers); {n} molecules, {batch.x.shape[0]} atoms, "
          f"{batch.edge_attr.shape[0]} directed bonds\n")  # fmt: skip
    print(f"encoder forward at prediction: {total:.3f} s, {total / n * 1e6:.0f} us per molecule\n")
    print("| embedding | rows x columns | one lookup per column (s) | embedding_bag (s) | ratio |")
    print("|---|---|---|---|---|")
    for name, shape, a, b in rows:
        print(f"| {name} | {shape[0]:,} x {shape[1]} | {a:.3f} | {b:.3f} | {a / b:.1f}x |")
    print()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
