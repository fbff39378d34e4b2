"""A probe for benchmark 1's roofline target: molddl's folded iteration written as one
compiled loop per block of samples, against molddl's PyTorch loop and the machine's matmul
peak, in one run. Not used by molddl's inference; it measures what a compiled kernel would
reach (binary labels, Jacobi, a fixed number of iterations).

Each block of 32 samples keeps its label states in registers for all iterations; the lanes
of a SIMD register hold samples, so the 128 hidden units are a chain of fused multiply-adds
and the sigmoid is evaluated for 32 samples at once. Needs a C compiler (``cc``).

    python benchmarks/compiled_kernel.py [--samples 2000] [--iterations 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, machine  # noqa: E402
from alternate_inference import (  # noqa: E402
    DEFAULT_MODEL,
    matmul_flops,
    tower_macs,
    trained_model,
    workload,
)

from molddl.inference.alternate import alternate  # noqa: E402

LANES = 32
SOURCE = r"""
#include <stdint.h>
#include <string.h>
#define L %(lanes)d
static inline float fexp(float x) {  /* 2^n p(r), polynomial of Cephes' expf: vectorizes */
  x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
  float n = __builtin_roundf(x * 1.44269504f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f; p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f; p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f; p = p * r * r + r + 1.f;
  int32_t i = ((int32_t)n + 127) << 23; float s; memcpy(&s, &i, 4);
  return p * s;
}
/* blocks of L samples; H1, H2: blocks x hidden x L; s1, s2: states, updated in place */
void jacobi(const float *H1, const float *H2, const float *m1, const float *m2,
            const float *w1, const float *w2, float b1, float b2, float *s1, float *s2,
            int64_t hidden, int64_t nblocks, int64_t iters) {
  for (int64_t k = 0; k < nblocks; k++) {
    const float *h1 = H1 + k * hidden * L, *h2 = H2 + k * hidden * L;
    float S1[L], S2[L];
    for (int l = 0; l < L; l++) { S1[l] = s1[k * L + l]; S2[l] = s2[k * L + l]; }
    for (int64_t t = 0; t < iters; t++) {
      float a1[L], a2[L];
      for (int l = 0; l < L; l++) { a1[l] = b1; a2[l] = b2; }
      for (int64_t j = 0; j < hidden; j++) {
        float mj1 = m1[j], wj1 = w1[j], mj2 = m2[j], wj2 = w2[j];
        for (int l = 0; l < L; l++) {  /* tower 2 reads label 1, tower 1 label 2 */
          float p2 = h2[j * L + l] + S1[l] * mj2; a2[l] += (p2 > 0 ? p2 : 0) * wj2;
          float p1 = h1[j * L + l] + S2[l] * mj1; a1[l] += (p1 > 0 ? p1 : 0) * wj1;
        }
      }
      for (int l = 0; l < L; l++) {
        S1[l] = 1.f / (1.f + fexp(-a1[l])); S2[l] = 1.f / (1.f + fexp(-a2[l]));
      }
    }
    for (int l = 0; l < L; l++) { s1[k * L + l] = S1[l]; s2[k * L + l] = S2[l]; }
  }
}
"""


def compile_kernel(workdir: Path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("no C compiler (cc) on this machine")
    src, lib = workdir / "jacobi.c", workdir / "jacobi.so"
    src.write_text(SOURCE % {"lanes": LANES})
    flags = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fPIC"]
    subprocess.run([cc, *flags, "-shared", str(src), "-o", str(lib)], check=True)
    fn = ctypes.CDLL(str(lib)).jacobi
    f = ctypes.POINTER(ctypes.c_float)
    i64 = ctypes.c_int64
    fn.argtypes = [f, f, f, f, f, f, ctypes.c_float, ctypes.c_float, f, f, i64, i64, i64]
    return fn


def blocks(x: np.ndarray) -> np.ndarray:
    """``n x hidden`` → ``blocks x hidden x LANES`` (padded with zeros), contiguous."""
    n, hidden = x.shape
    nb = -(-n // LANES)
    out = np.zeros((nb * LANES, hidden), dtype=np.float32)
    out[:n] = x
    return np.ascontiguousarray(out.reshape(nb, LANES, hidden).transpose(0, 2, 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    logging.disable(logging.WARNING)

    model = trained_model(args.model)
    cfg = model.config_
    towers, H, hh, init, _ = workload(model, args.samples, torch.device("cpu"))
    if not all(t.in_spec.kind == "binary" and t.out_spec.kind == "binary" for t in towers):
        raise SystemExit("the probe covers two binary labels")
    n = H.shape[0]
    with torch.inference_mode():
        (M1, c1), (M2, c2) = (t.label_projection() for t in towers)
    H1, H2 = blocks((hh[0] + c1).numpy()), blocks((hh[1] + c2).numpy())
    m1, m2 = (np.ascontiguousarray(M[0].numpy()) for M in (M1, M2))
    out_layers = [t.body[2][-1] for t in towers]
    if any(
        len(t.body[2]) != 1 or o.out_features != 1 for t, o in zip(towers, out_layers, strict=True)
    ):
        raise SystemExit("the probe covers towers with one output layer (tower_layers: 1)")
    w1, w2 = (np.ascontiguousarray(o.weight[0].detach().numpy()) for o in out_layers)
    b1, b2 = (o.bias[0].item() for o in out_layers)
    hidden = H1.shape[1]
    nb = H1.shape[0]

    with tempfile.TemporaryDirectory() as tmp:
        fn = compile_kernel(Path(tmp))
        ptr = ctypes.POINTER(ctypes.c_float)

        def run() -> tuple[np.ndarray, np.ndarray]:
            s1 = np.zeros(nb * LANES, dtype=np.float32)
            s2 = np.zeros(nb * LANES, dtype=np.float32)
            s1[:n], s2[:n] = init[0][:, 0].numpy(), init[1][:, 0].numpy()  # P(class 1)
            share = -(-nb // args.threads)

            def part(lo: int, hi: int) -> None:  # ctypes releases the GIL during the call
                fn(H1[lo:].ctypes.data_as(ptr), H2[lo:].ctypes.data_as(ptr),
                   m1.ctypes.data_as(ptr), m2.ctypes.data_as(ptr), w1.ctypes.data_as(ptr),
                   w2.ctypes.data_as(ptr), b1, b2, s1[lo * LANES:].ctypes.data_as(ptr),
                   s2[lo * LANES:].ctypes.data_as(ptr), hidden, hi - lo, args.iterations)  # fmt: skip

            threads = [threading.Thread(target=part, args=(lo, min(nb, lo + share)))
                       for lo in range(0, nb, share)]  # fmt: skip
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return s1[:n], s2[:n]

        compiled_s = best_of(run, args.repeat)
        s1, s2 = run()
    fixed = dataclasses.replace(cfg.inference, tol=-1.0, max_iter=args.iterations)
    torch_s = best_of(lambda: alternate(towers, hh, init, fixed), args.repeat)
    ref = alternate(towers, hh, init, fixed).states
    diff = max(np.abs(s1 - ref[0][:, 0].numpy()).max(), np.abs(s2 - ref[1][:, 0].numpy()).max())
    peak = matmul_flops(torch.device("cpu"))
    flops = 2 * n * args.iterations * sum(tower_macs(t, "folded") for t in towers)

    print(f"machine: {machine()}")
    print(f"model: {args.model}; {n} samples, {args.iterations} fixed iterations (Jacobi)\n")
    print(f"measured matmul peak (2048^3, fp32): {peak / 1e9:.1f} GFLOP/s\n")
    print("| folded iteration | seconds | GFLOP | GFLOP/s | of peak |")
    print("|---|---|---|---|---|")
    for name, sec in (("molddl's PyTorch loop (alternate)", torch_s),
                      (f"compiled probe, {args.threads} threads", compiled_s)):  # fmt: skip
        print(f"| {name} | {sec:.4f} | {flops / 1e9:.2f} | {flops / sec / 1e9:.1f} | "
              f"{100 * flops / sec / peak:.1f} % |")  # fmt: skip
    print(f"\nlargest difference in a label probability from molddl's loop: {diff:.1e}")


if __name__ == "__main__":
    main()
