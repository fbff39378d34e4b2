"""Benchmark 2: Tox21's 7,831 SMILES to graphs — cold (1 and N workers), from the on-disk
cache, and DeepChem's MolGraphConvFeaturizer in the same run. molddl's pipeline
(``featurize_dataset``) uses ``featurize_graphs``; ``featurize`` is the DeepChem-style API.

    python benchmarks/featurization.py [--workers 2] [--repeat 3] [--profile]

``--profile`` adds a cProfile of ``featurize_graphs`` in one process: the cost of each RDKit
call per molecule.
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

from molddl.data.featurizers import (  # noqa: E402
    DeepChemGraphFeaturizer,
    PyGGraphFeaturizer,
    featurize_dataset,
)
from molddl.data.loaders import load_tox21  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="also profile one process")
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
    if args.profile:
        profile_one_process(pyg, smiles)


def profile_one_process(featurizer, smiles: list[str], repeat: int = 3) -> None:
    """Where one process spends its time: parsing against reading the graph, and the cost
    of each RDKit call the PyG features make, per atom or bond (cProfile cannot see inside
    RDKit's Boost.Python calls, so they are timed one by one)."""
    from molddl.data.featurizers import STEREO_MARKS, parse_smiles

    def per(fn, count: int) -> float:  # best-of time of fn, in microseconds per item
        return best_of(fn, repeat) / count * 1e6

    parsed = [(m, any(c in s for c in STEREO_MARKS)) for s in smiles
              if (m := parse_smiles(s)) is not None]  # fmt: skip
    mols = [m for m, _ in parsed]
    n = len(mols)
    parse = per(lambda: [parse_smiles(s) for s in smiles], len(smiles))
    arrays = per(lambda: [featurizer._graph_arrays(m, st) for m, st in parsed], n)
    print(f"\none process, per molecule: parse the SMILES (RDKit, sanitized) {parse:.0f} us, "
          f"read the graph into arrays {arrays:.0f} us\n")  # fmt: skip
    atoms = [a for m in mols for a in m.GetAtoms()]
    bonds = [b for m in mols for b in m.GetBonds()]
    rows = [
        ("reach every atom: iterate GetAtoms()",
         per(lambda: [list(m.GetAtoms()) for m in mols], len(atoms))),
        ("reach every atom: GetAtomWithIdx(i)",
         per(lambda: [list(map(m.GetAtomWithIdx, range(m.GetNumAtoms()))) for m in mols],
             len(atoms))),
        ("reach every bond: GetBondWithIdx(i)",
         per(lambda: [list(map(m.GetBondWithIdx, range(m.GetNumBonds()))) for m in mols],
             len(bonds))),
    ]  # fmt: skip
    for name in ("GetAtomicNum", "GetChiralTag", "GetTotalDegree", "GetFormalCharge",
                 "GetTotalNumHs", "GetNumRadicalElectrons", "GetHybridization",
                 "GetIsAromatic", "IsInRing"):  # fmt: skip
        rows.append((f"atom.{name}()", per(lambda f=name: [getattr(a, f)() for a in atoms],
                                           len(atoms))))  # fmt: skip
    for name in ("GetBeginAtomIdx", "GetBondType", "GetStereo", "GetIsConjugated"):
        rows.append((f"bond.{name}()", per(lambda f=name: [getattr(b, f)() for b in bonds],
                                           len(bonds))))  # fmt: skip
    print(f"{len(atoms) / n:.1f} atoms and {len(bonds) / n:.1f} bonds per molecule\n")
    print("| RDKit call | us per atom or bond |")
    print("|---|---|")
    for name, us in rows:
        print(f"| `{name}` | {us:.2f} |")


if __name__ == "__main__":
    main()
