"""Benchmark 3: seconds per epoch on Tox21 for the marginal model and for DLL (all three
losses), measured in the same run, alternating, at molddl's default sizes.

    python benchmarks/training.py [--rounds 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402

from molddl.config import Config  # noqa: E402
from molddl.data.preprocess import Preprocessor  # noqa: E402
from molddl.models.nets import DualTowerNet, MarginalNet  # noqa: E402
from molddl.models.training import DLLModule, MarginalModule, fit_module  # noqa: E402
from molddl.pipeline import load_splits  # noqa: E402


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs per model per round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    cfg = Config.from_dict({"data": {"dataset": "tox21"}})
    train_cfg = cfg.train
    train_cfg.patience = args.epochs + 1  # no early stop inside a timed round
    train, val, _ = load_splits(cfg.data, cfg.seed)
    pre = Preprocessor.fit(train)
    tr, va = pre.transform(train), pre.transform(val)

    # rounds alternate the two models, so a change in machine load hits both alike
    L.seed_everything(0, verbose=False)
    marginal = MarginalNet(cfg.model, pre.labels, pre.input_info)
    net = DualTowerNet(cfg.model, pre.labels, pre.input_info)
    t_marg, t_dll = EpochTimer(), EpochTimer()
    for r in range(args.rounds):
        fit_module(MarginalModule(marginal, train_cfg, pre), tr, va, train_cfg, seed=r,
                   max_epochs=args.epochs, accelerator="cpu", callbacks=[t_marg])  # fmt: skip
        fit_module(DLLModule(net, marginal, train_cfg, pre), tr, va, train_cfg, seed=r,
                   max_epochs=args.epochs, accelerator="cpu", callbacks=[t_dll])  # fmt: skip
        marginal.requires_grad_(True)

    print(f"machine: {machine()}")
    print(f"Tox21 train part: {len(tr)} molecules, batch {train_cfg.batch_size}, "
          f"hidden {cfg.model.hidden}; {args.rounds} alternating rounds of {args.epochs} "
          f"epoch(s) per model, median epoch\n")  # fmt: skip
    m, d = (
        sorted(t_marg.seconds)[len(t_marg.seconds) // 2],
        sorted(t_dll.seconds)[len(t_dll.seconds) // 2],
    )
    print("| model | s / epoch | vs marginal |")
    print("|---|---|---|")
    print(f"| marginal (masked multi-task) | {m:.2f} | 1.00x |")
    print(f"| DLL (loss_sup + loss_rec + loss_dual) | {d:.2f} | {d / m:.2f}x |")


if __name__ == "__main__":
    main()
