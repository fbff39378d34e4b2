"""Profile of the GNN encoder at prediction (the largest cost of ``molddl predict`` after
featurization): time per molecule by batch size (with the page faults each costs), the top
operators, and the categorical embedding as one lookup per column against one
``embedding_bag``, in the same run.

    python benchmarks/encoder.py [--model runs/bench/tox21-default.pt] [--molecules 4096]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric import nn as gnn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, machine  # noqa: E402

from molddl.config import InferenceConfig  # noqa: E402
from molddl.models.estimator import DualLabelModel  # noqa: E402
from molddl.pipeline import load_splits  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("runs/bench/tox21-default.pt"))
    p.add_argument("--molecules", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[4096, 1024, 256, 64])
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
        sizes = []  # (batch size, seconds, minor page faults per molecule)
        default = InferenceConfig().encoder_batch_size("cpu")
        for size in dict.fromkeys([*args.batch_sizes, default]):
            parts = [prep.batch(np.arange(i, min(n, i + size)))[0] for i in range(0, n, size)]
            if size == default:
                at_default = parts
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            sec = best_of(lambda parts=parts: [encoder(b) for b in parts], args.repeat)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            sizes.append((size, sec, faults / args.repeat / n))
        gine = None  # (per bond, per bond kind) seconds at the default batch size
        if isinstance(encoder.convs[0], gnn.GINEConv) and encoder.pooling == "mean":
            for b in at_default[:2]:
                torch.testing.assert_close(encoder(b), pyg_layers(encoder, b))
            gine = (
                best_of(lambda: [pyg_layers(encoder, b) for b in at_default], args.repeat),
                best_of(lambda: [encoder(b) for b in at_default], args.repeat),
            )
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
            for b in at_default:
                encoder(b)

    print(f"machine: {machine()}")
    print(f"model: {args.model} ({cfg.model.encoder}, hidden {cfg.model.hidden}, "
          f"{cfg.model.layers} layers); {n} molecules, {batch.x.shape[0]} atoms, "
          f"{batch.edge_attr.shape[0]} directed bonds\n")  # fmt: skip
    print("| molecules per encoder call | s | us per molecule | page faults per molecule |")
    print("|---|---|---|---|")
    for size, sec, faults in sizes:
        print(f"| {size:,} | {sec:.3f} | {sec / n * 1e6:.0f} | {faults:.0f} |")
    if gine is not None:
        print(f"\nGINE edge projection, {default} molecules per call: once per bond (PyG's "
              f"layer, as in training) {gine[0] / n * 1e6:.0f} us per molecule, once per bond "
              f"kind (molddl at prediction) {gine[1] / n * 1e6:.0f} us: "
              f"{gine[0] / gine[1]:.2f}x")  # fmt: skip
    print(
        f"\nembeddings: one call over all {n:,} molecules ({total:.3f} s); profile: calls of "
        f"{default} molecules (the CPU default)\n"
    )
    print("| embedding | rows x columns | one lookup per column (s) | embedding_bag (s) | ratio |")
    print("|---|---|---|---|---|")
    for name, shape, a, b in rows:
        print(f"| {name} | {shape[0]:,} x {shape[1]} | {a:.3f} | {b:.3f} | {a / b:.1f}x |")
    print()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def pyg_layers(encoder, batch) -> torch.Tensor:
    """The encoder through PyG's own ``GINEConv`` (one edge projection per bond), as it
    trains; mean pooling."""
    H = encoder.atom(batch.x)
    E = encoder.bond(batch.edge_attr)
    for conv, norm in zip(encoder.convs, encoder.norms, strict=True):
        H = H + torch.relu(norm(conv(H, batch.edge_index, E)))
    return gnn.global_mean_pool(H, batch.batch, int(batch.num_graphs))


if __name__ == "__main__":
    main()
