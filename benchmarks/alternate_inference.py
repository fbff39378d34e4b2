"""Benchmark 1: alternate inference, 2,000 unlabelled Tox21 samples x 1,000 iterations.

Measures, in one run: the fixed workload (exactly 1,000 iterations) for four ways of
iterating the towers — the whole tower, the first layer split (``W_h h`` once), molddl's
folded label path (``state @ M + c``) in PyTorch (``inference.kernel: torch``) and the same
iteration compiled by numba (``inference.kernel: numba``, the default on the CPU), the latter
also on one thread — their FLOP/s against this machine's measured matmul FLOP/s, and the time
with convergence-based early exit for both of molddl's loops. numba compiles (or loads from
molddl's cache) before the clock starts; the compilation is timed on its own.

    python benchmarks/alternate_inference.py [--model tox21.pt] [--samples 2000]

``--large 100000`` times instead that many unlabelled samples x ``--iterations`` fixed
iterations, on towers of molddl's default sizes with random weights and inputs (a fixed
workload costs the same whatever the weights; no model or data needed): the CPU path (the
numba kernel on 2 threads) against the PyTorch loop on CUDA synchronising with the device
every iteration (``inference.sync_every: 1``) and at the default for a GPU. Without CUDA it
prints the CPU row and says that the GPU rows were not run.

    python benchmarks/alternate_inference.py --large 100000
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, machine  # noqa: E402

from molddl.config import Config, InferenceConfig, ModelConfig  # noqa: E402
from molddl.data.labels import LabelSpec  # noqa: E402
from molddl.inference import kernel  # noqa: E402
from molddl.inference.alternate import alternate  # noqa: E402
from molddl.inference.predict import encode  # noqa: E402
from molddl.models.estimator import DualLabelModel  # noqa: E402
from molddl.nn.towers import Tower  # noqa: E402
from molddl.pipeline import load_splits  # noqa: E402

DEFAULT_MODEL = Path("runs/bench/tox21-default.pt")


def trained_model(path: Path) -> DualLabelModel:
    """The Tox21 model at molddl's default sizes (trained briefly if not there yet)."""
    if path.exists():
        return DualLabelModel.load(path)
    cfg = Config.from_dict({"data": {"dataset": "tox21"}, "train": {"max_epochs": 3}})
    train, val, _ = load_splits(cfg.data, cfg.seed)
    model = DualLabelModel(cfg).fit(train, val)
    model.save(path)
    return model


def workload(model: DualLabelModel, samples: int, device: torch.device):
    """The first ``samples`` Tox21 test molecules with no label known: the towers (on
    ``device``, eval mode), ``h``, ``[W_h h]`` per tower, the marginal model's initial states
    and the seconds the encoder pass took."""
    cfg = model.config_
    _, _, test = load_splits(dataclasses.replace(cfg.data, split_fractions=[0.0, 0.0, 1.0]), 0)
    data = test.subset(list(range(min(samples, len(test)))))
    prep = model.preprocessor_.transform(data.with_labels(data.y * float("nan")))
    t0 = time.perf_counter()
    H, mraw = encode(model.net_, model.marginal_, prep, device, 4096)
    encode_s = time.perf_counter() - t0
    towers = [t.to(device).eval() for t in model.net_.towers]
    with torch.inference_mode():
        hh = [t.encode_h(H) for t in towers]
        init = [towers[k].out_kind.to_state(mraw[k]) for k in range(2)]
    return towers, H, hh, init, encode_s


def tower_macs(tower, variant: str) -> int:
    """Multiply-adds of one tower evaluation for one sample."""
    d_h, hidden = tower.lin_h.in_features, tower.lin_h.out_features
    label_dim = tower.lin_y.in_features
    # the label embedding: a C x label_dim table (classes) or a label_dim x 1 linear map
    embed = sum(p.numel() for p in tower.embed.parameters() if p.dim() == 2)
    body = sum(
        m.in_features * m.out_features for m in tower.body.modules() if hasattr(m, "in_features")
    )
    if variant == "whole tower":
        return d_h * hidden + embed + label_dim * hidden + body
    if variant == "split first layer":
        return embed + label_dim * hidden + body
    return tower.label_projection()[0].numel() + body  # state @ M: state width x hidden


def loop(towers, H, hh, init, iterations: int, variant: str):
    """The pre-optimisation iterations, for comparison (Jacobi, no early exit)."""
    S1, S2 = init
    k1, k2 = towers[0].out_kind, towers[1].out_kind
    for _ in range(iterations):
        if variant == "whole tower":
            N2, N1 = towers[1](H, S1), towers[0](H, S2)
        else:
            N2, N1 = towers[1].from_parts(hh[1], S1), towers[0].from_parts(hh[0], S2)
        S1, S2 = k1.to_state(N1), k2.to_state(N2)
    return S1, S2


def matmul_flops(device: torch.device, n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of an ``n x n`` fp32 matrix product on ``device`` (the roofline's peak)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def product():
        a @ b
        sync()

    product()  # warm-up: the first CUDA product loads the kernels
    return 2 * n**3 / best_of(product, repeat)


def random_workload(samples: int, seed: int = 0):
    """Two towers of molddl's default sizes for a pair of binary labels (Tox21's), random
    weights, eval mode, on the CPU; ``[W_h h]`` per tower for random ``h``; random initial
    probabilities."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    m, spec = ModelConfig(), LabelSpec("y", "binary")
    towers = [
        Tower(m.hidden, spec, spec, label_dim=m.label_dim, hidden=m.tower_hidden,
              layers=m.tower_layers).eval()
        for _ in range(2)
    ]  # fmt: skip
    h = torch.randn(samples, m.hidden, generator=gen)
    with torch.inference_mode():
        hh = [t.encode_h(h) for t in towers]
    init = [torch.rand(samples, 1, generator=gen) for _ in range(2)]
    return towers, hh, init


def large(args) -> None:
    """``--large``: the numba kernel on 2 CPU threads against the PyTorch loop on CUDA, one
    fixed workload, every row in this process."""
    n, iterations = args.large, args.iterations
    towers, hh, init = random_workload(n)
    fixed = dataclasses.replace(InferenceConfig(), tol=-1.0, max_iter=iterations)
    warm = dataclasses.replace(fixed, max_iter=2)
    rows, results = [], {}
    why = kernel.unsupported(towers, hh) or kernel.unavailable()
    if why is None:
        kernel.run(towers, hh, init, warm, threads=2)  # compiles, or loads from the cache
        sec = best_of(lambda: kernel.run(towers, hh, init, fixed, threads=2), args.repeat)
        rows.append(("numba kernel, 2 threads (`inference.kernel: numba`)", "cpu", sec))
        results["numba"] = kernel.run(towers, hh, init, fixed, threads=2)[0]
    gpu = torch.cuda.is_available()
    if gpu:
        dev = torch.device("cuda")
        towers_d = [copy.deepcopy(t).to(dev) for t in towers]
        hh_d, init_d = [x.to(dev) for x in hh], [x.to(dev) for x in init]
        auto = fixed.iterations_per_sync("cuda")
        for every in (1, None):
            icfg = dataclasses.replace(fixed, kernel="torch", sync_every=every)

            def run(c=icfg):
                out = alternate(towers_d, hh_d, init_d, c)
                torch.cuda.synchronize()
                return out

            run(dataclasses.replace(icfg, max_iter=2))  # warm-up: CUDA's first calls
            sec = best_of(run, args.repeat)
            name = f"sync_every {every}" if every else f"sync_every unset (auto: {auto})"
            rows.append((f"PyTorch loop, {name}", "cuda", sec))
            results[every or "auto"] = [s.cpu().numpy() for s in run().states]

    print(f"machine: {machine()}")
    print(
        f"workload: {n} samples x {iterations} fixed iterations (tol <= 0), towers of molddl's "
        f"default sizes (hidden {towers[0].lin_h.out_features}, label_dim "
        f"{towers[0].lin_y.in_features}), random weights and inputs\n"
    )
    flops = 2 * n * iterations * sum(tower_macs(t, "folded") for t in towers)
    print("| alternate inference | device | seconds | GFLOP/s | speed-up over numba, 2 threads |")
    print("|---|---|---|---|---|")
    base = rows[0][2] if why is None else None
    for name, where, sec in rows:
        ratio = f"{base / sec:.1f}x" if base else "-"
        print(f"| {name} | {where} | {sec:.4f} | {flops / sec / 1e9:.1f} | {ratio} |")
    if why is not None:
        print(f"\nnumba kernel not measured: {why}")
    if not gpu:
        print("\nGPU rows not run: no CUDA device here (torch.cuda.is_available() is False)")
        return
    one, auto_s = rows[-2][2], rows[-1][2]
    print(f"\nsync_every unset (auto) against sync_every 1: {one / auto_s:.1f}x")
    if "numba" in results:
        diff = max(abs(results["numba"][k] - results["auto"][k]).max() for k in range(2))
        print(f"largest state difference, numba (CPU) against the PyTorch loop (CUDA): {diff:.1e}")
    diff = max(abs(results[1][k] - results["auto"][k]).max() for k in range(2))
    print(f"largest state difference, CUDA sync_every 1 against auto: {diff:.1e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--profile", action="store_true", help="torch.profiler table of the PyTorch loop"
    )
    p.add_argument(
        "--large",
        type=int,
        metavar="SAMPLES",
        help="time SAMPLES random samples instead: numba on 2 CPU threads against CUDA",
    )
    args = p.parse_args()
    logging.disable(logging.WARNING)
    if args.large:
        large(args)
        return
    device = torch.device(args.device)

    model = trained_model(args.model)
    cfg = model.config_
    towers, H, hh, init, encode_s = workload(model, args.samples, device)
    n = H.shape[0]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    kernels = ["torch"]
    t0 = time.perf_counter()
    why = kernel.unsupported(towers, hh) or kernel.unavailable()  # compiles, or loads
    compile_s = time.perf_counter() - t0
    if why is None:
        kernels.append("numba")
    fixed = dataclasses.replace(cfg.inference, tol=-1.0, max_iter=args.iterations)
    early = dataclasses.replace(cfg.inference, max_iter=args.iterations)

    def run_alternate(icfg, name):
        out = alternate(towers, hh, init, dataclasses.replace(icfg, kernel=name))
        sync()
        return out

    def run_loop(variant):
        with torch.inference_mode():
            loop(towers, H, hh, init, args.iterations, variant)
        sync()

    for name in kernels:  # warm-up: first calls, outside the clock
        run_alternate(dataclasses.replace(fixed, max_iter=2), name)
    rows = []
    for variant in ("whole tower", "split first layer"):
        rows.append((variant, "", best_of(lambda v=variant: run_loop(v), args.repeat)))
    for name in kernels:
        sec = best_of(lambda k=name: run_alternate(fixed, k), args.repeat)
        rows.append(("folded label path", name, sec))
    threads = torch.get_num_threads()
    if "numba" in kernels and threads > 1:  # how the kernel's threads scale
        sec = best_of(lambda: kernel.run(towers, hh, init, fixed, threads=1), args.repeat)
        rows.append(("folded label path, 1 thread", "numba", sec))
    early_s = {k: best_of(lambda k=k: run_alternate(early, k), args.repeat) for k in kernels}
    res = {k: run_alternate(early, k) for k in kernels}
    peak = matmul_flops(device)

    print(f"machine: {machine()}; device {device}; {threads} threads")
    print(
        f"model: {args.model} (hidden {towers[0].lin_h.out_features}, label_dim "
        f"{towers[0].lin_y.in_features}); {n} samples, encoder once: {encode_s:.3f} s"
    )
    if why is not None:
        print(f"numba kernel not measured: {why}")
    else:
        stats = kernel._run_blocks.stats
        how = "loaded from the cache" if sum(stats.cache_hits.values()) else "compiled"
        print(f"numba kernel {how} in {compile_s:.2f} s ({stats.cache_path})")
    print(f"\nmeasured matmul peak on {device} (2048^3, fp32): {peak / 1e9:.1f} GFLOP/s\n")
    print(
        f"| iteration ({args.iterations} fixed) | inference.kernel | seconds | GFLOP | GFLOP/s "
        "| of peak | speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    base = rows[0][2]
    for name, kern, sec in rows:
        key = "folded" if name.startswith("folded") else name
        flops = 2 * n * args.iterations * sum(tower_macs(t, key) for t in towers)
        print(
            f"| {name} | {kern} | {sec:.4f} | {flops / 1e9:.2f} | {flops / sec / 1e9:.1f} | "
            f"{100 * flops / sec / peak:.1f} % | {base / sec:.1f}x |"
        )
    print(f"\nearly exit (tol {early.tol}, max {args.iterations}, cycles {early.cycles}):")
    for k in kernels:
        r = res[k]
        iters = r.iterations.float()
        print(
            f"- kernel {k}: {early_s[k] * 1000:.1f} ms; converged "
            f"{100 * r.converged.float().mean().item():.1f} %, left in a period-2 cycle "
            f"{100 * r.cycle.float().mean().item():.1f} %, iterations median "
            f"{iters.median().item():.0f}, max {iters.max().item():.0f}"
        )
    if len(kernels) == 2:
        a, b = res["torch"], res["numba"]
        fa, fb = run_alternate(fixed, "torch"), run_alternate(fixed, "numba")
        diff = max((fa.states[k] - fb.states[k]).abs().max().item() for k in range(2))
        print(
            f"\nnumba vs PyTorch loop: largest state difference after {args.iterations} "
            f"fixed iterations {diff:.1e}; early exit at another iteration for "
            f"{int((a.iterations != b.iterations).sum())} of {n} samples, with another "
            f"outcome (converged / cycle) for "
            f"{int(((a.converged != b.converged) | (a.cycle != b.cycle)).sum())}"
        )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_alternate(dataclasses.replace(fixed, max_iter=200), "torch")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
