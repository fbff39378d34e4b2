"""Benchmark 2: Tox21's 7,831 SMILES to graphs — cold (1 and N workers), from the on-disk
cache, and DeepChem's MolGraphConvFeaturizer in the same run. molddl's pipeline
(``featurize_dataset``) uses ``featurize_graphs``; ``featurize`` is the DeepChem-style API.

    python benchmarks/featurization.py [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, machine  # noqa: E402

from molddl.data.featurize import featurize_dataset  # noqa: E402
from molddl.data.featurizers import DeepChemGraphFeaturizer, PyGGraphFeaturizer  # noqa: E402
from molddl.data.loaders import load_tox21  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    logging.disable(logging.WARNING)  # the 8 invalid SMILES are reported elsewhere

    data = load_tox21()
    smiles = list(data.smiles)
    n = len(smiles)
    pyg = PyGGraphFeaturizer()
    rows = []
    t = best_of(lambda: pyg.featurize(smiles, n_jobs=1), args.repeat)
    rows.append(("molddl pyg, cold, a Data object per molecule (featurize), 1 worker", t))
    t = best_of(lambda: pyg.featurize_graphs(smiles, n_jobs=1), args.repeat)
    rows.append(("molddl pyg, cold, into a GraphStore (featurize_graphs), 1 worker", t))
    t = best_of(lambda: pyg.featurize_graphs(smiles, n_jobs=args.workers), args.repeat)
    rows.append((f"molddl pyg, cold, into a GraphStore, {args.workers} workers", t))
    with tempfile.TemporaryDirectory() as cache:
        featurize_dataset(data, pyg, cache_dir=cache)  # fill
        t = best_of(lambda: featurize_dataset(data, pyg, cache_dir=cache), args.repeat)
    rows.append(("molddl pyg, from cache (featurize_dataset)", t))
    dc = DeepChemGraphFeaturizer()
    t = best_of(lambda: dc._dc.featurize(smiles), 1)
    rows.append(("DeepChem MolGraphConvFeaturizer, 1 process", t))

    print(f"machine: {machine()}")
    print(f"{n} SMILES (Tox21)\n")
    print("| featurizer | seconds | molecules/s | vs DeepChem |")
    print("|---|---|---|---|")
    dc_rate = n / rows[-1][1]
    for name, sec in rows:
        print(f"| {name} | {sec:.3f} | {n / sec:,.0f} | {n / sec / dc_rate:.1f}x |")


if __name__ == "__main__":
    main()
