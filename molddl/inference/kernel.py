"""Alternate inference as compiled code on the CPU (``inference.kernel``).

The folded iteration of :func:`molddl.inference.alternate.alternate` costs a few hundred
multiply-adds per sample; in PyTorch each of its operations costs more to dispatch and to
stream through memory than its arithmetic (``benchmarks/alternate_inference.py``).
``_alternate.c`` runs the same iteration for blocks of 32 samples, one sample per SIMD lane,
with the block's states kept in registers or L1 for all its iterations.

It is compiled on first use with the machine's C compiler (``$CC``, else ``cc``, ``gcc`` or
``clang``) for this CPU (``-march=native``) and kept in molddl's cache
(``$MOLDDL_CACHE_DIR/kernels`` or the user cache), keyed by the source, the compiler and the
CPU, so a cache shared between machines holds one build per kind of CPU. Without a compiler
molddl uses the PyTorch loop.

The two agree to float rounding (``tests/unit/inference/test_kernel.py``): the kernel's exponential and
its order of summation are its own. A sample's result does not depend on the other samples
or on the thread count; the kernel's result on one machine is the same on every run.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from molddl.io import atomic_path, user_cache
from molddl.nn.towers import Tower

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_alternate.c")
FLAGS = [
    "-O3",
    "-march=native",
    "-mprefer-vector-width=512",
    "-std=gnu11",
    "-pthread",
    "-fPIC",
    "-shared",
]
PORTABLE_FLAGS = ["-O3", "-std=gnu11", "-pthread", "-fPIC", "-shared"]
ACTIVE, CONVERGED, CYCLE, MAX_ITER = range(4)
KINDS = {"binary": 0, "multiclass": 1, "regression": 2}

_float_p = ctypes.POINTER(ctypes.c_float)


class _Tower(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_int64) for name in ("s_in", "hidden", "depth", "raw", "kind")),
        *((name, _float_p) for name in ("H", "M", "W", "b", "Wo", "bo")),
    ]


class _Config(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_int64) for name in ("gauss_seidel", "cycles", "check_cycles")),
        ("max_iter", ctypes.c_int64),
        *((name, ctypes.c_float) for name in ("tol", "cycle_tol", "keep", "damping")),
    ]


class _Lanes(ctypes.Structure):
    _fields_ = [
        ("rows", ctypes.POINTER(ctypes.c_int64)),
        *((name, _float_p) for name in ("S1", "S2", "P1", "P2", "I1", "I2", "O1", "O2")),
        ("iter", ctypes.POINTER(ctypes.c_int64)),
        ("status", ctypes.POINTER(ctypes.c_int8)),
        ("residual", _float_p),
    ]


class KernelUnavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here; the message says why."""


def cache_dir() -> Path:
    return user_cache("kernels")


def compiler() -> str | None:
    """The C compiler to use: ``$CC`` if set (an empty value disables the kernel)."""
    if "CC" in os.environ:
        cc = os.environ["CC"].strip()
        return (shutil.which(cc) or None) if cc else None
    return next((p for c in ("cc", "gcc", "clang") if (p := shutil.which(c))), None)


def _cpu() -> str:
    """What ``-march=native`` depends on: the architecture and the CPU's feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags.strip()}"


def _key(cc: str) -> str:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    h = hashlib.sha256(SOURCE.read_bytes())
    for part in (os.path.realpath(cc), version.stdout, " ".join(FLAGS), _cpu()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:24]


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.molddl_lanes.restype = ctypes.c_int64
    lib.molddl_alternate.restype = ctypes.c_int64
    lib.molddl_alternate.argtypes = [
        ctypes.POINTER(_Tower),
        ctypes.POINTER(_Tower),
        ctypes.POINTER(_Config),
        ctypes.POINTER(_Lanes),
        ctypes.c_int64,
        ctypes.c_int64,
    ]
    return lib


def _build(cc: str, target: Path) -> None:
    """Compile the source into ``target``, atomically; portable flags if native ones fail."""
    errors = ""
    with atomic_path(target) as tmp:
        for flags in (FLAGS, PORTABLE_FLAGS):
            try:
                run = subprocess.run(
                    [cc, *flags, str(SOURCE), "-o", str(tmp)],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
            except subprocess.SubprocessError as err:
                msg = f"{cc} did not finish compiling {SOURCE.name}: {err}"
                raise KernelUnavailable(msg) from err
            if run.returncode == 0:
                return
            errors = run.stderr.strip()[-2000:]
        raise KernelUnavailable(f"{cc} could not compile {SOURCE.name}: {errors}")


@functools.cache
def _attempt(cc: str | None) -> tuple[ctypes.CDLL | None, str | None]:
    """``(kernel, None)``, or ``(None, why not)``: one attempt per compiler and process."""
    try:
        return _load(cc), None
    except KernelUnavailable as err:
        logger.info("alternate inference on the CPU runs in PyTorch: %s", err)
        return None, str(err)


def _load(cc: str | None) -> ctypes.CDLL:
    if os.name != "posix":  # the build (-fPIC, -pthread, a .so, os.getuid) is POSIX's
        raise KernelUnavailable(f"the compiled kernel is built on POSIX systems, not {os.name}")
    if cc is None:
        raise KernelUnavailable("no C compiler found ($CC, cc, gcc or clang)")
    try:
        key = _key(cc)
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelUnavailable(f"{cc} --version failed: {err}") from err
    places = [cache_dir(), Path(tempfile.gettempdir()) / f"molddl-kernels-{os.getuid()}"]
    last: Exception | None = None
    for where in places:  # the cache, or a private temporary folder if it is not writable
        path = where / f"alternate-{key}.so"
        try:
            if path.exists():
                try:
                    return _open(path)
                except OSError:  # a damaged file: build it again
                    logger.warning("rebuilding the damaged compiled kernel %s", path)
            _build(cc, path)
            return _open(path)
        except OSError as err:
            last = err
    raise KernelUnavailable(f"cannot write the compiled kernel: {last}")


def load() -> ctypes.CDLL:
    """The compiled kernel, built on first use; raises :class:`KernelUnavailable`."""
    lib, why = _attempt(compiler())
    if lib is None:
        raise KernelUnavailable(why)
    return lib


def unavailable() -> str | None:
    """Why the compiled kernel cannot run here, or ``None`` when it can."""
    return _attempt(compiler())[1]


def _layers(tower) -> list[nn.Linear] | None:
    """The linear layers above the first, if the tower's body is molddl's MLP."""
    body = tower.body
    if not (
        len(body) == 3
        and isinstance(body[0], nn.ReLU)
        and isinstance(body[1], nn.Dropout)
        and isinstance(body[2], nn.Sequential)
    ):
        return None
    mods = list(body[2])
    lin, rest = mods[::3], [m for i, m in enumerate(mods) if i % 3]
    ok = all(isinstance(m, nn.Linear) for m in lin) and all(
        isinstance(m, nn.ReLU if i % 2 == 0 else nn.Dropout) for i, m in enumerate(rest)
    )
    return lin if ok and len(mods) % 3 == 1 else None


def unsupported(towers, hh: list[torch.Tensor]) -> str | None:
    """Why these towers and inputs cannot use the compiled kernel, or ``None``."""
    if not all(isinstance(t, Tower) for t in towers):
        return "the towers are not molddl's Tower"
    if any(h.dtype != torch.float32 for h in hh):
        return "it computes in float32"
    if any(t.training for t in towers):
        return "the towers are in training mode (dropout)"
    if any(_layers(t) is None for t in towers):
        return "a tower is not molddl's MLP"
    return None


def _arrays(tower, hh: torch.Tensor) -> dict[str, np.ndarray | int]:
    """The tower's folded parameters as float32 arrays, and its dimensions."""
    M, c = tower.label_projection()
    *hidden_layers, out = _layers(tower)
    raw = out.out_features if tower.out_spec.kind == "multiclass" else 1  # a value: the mean
    width = M.shape[1]

    def arr(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    return {
        "H": arr(hh) + arr(c),  # NumPy: a PyTorch op here would leave its threads spinning
        "M": arr(M),
        "W": arr(torch.stack([m.weight for m in hidden_layers]))
        if hidden_layers
        else np.zeros(1, np.float32),
        "b": arr(torch.stack([m.bias for m in hidden_layers]))
        if hidden_layers
        else np.zeros(1, np.float32),
        "Wo": arr(out.weight[:raw]),
        "bo": arr(out.bias[:raw]),
        "s_in": M.shape[0],
        "hidden": width,
        "depth": len(hidden_layers),
        "raw": raw,
        "kind": KINDS[tower.out_spec.kind],
    }


def _ptr(a: np.ndarray, kind=ctypes.c_float):
    return a.ctypes.data_as(ctypes.POINTER(kind))


@torch.inference_mode()
def run(towers, hh: list[torch.Tensor], init: list[torch.Tensor], cfg, threads: int | None = None):
    """Alternate inference with the compiled kernel; the arguments and the meaning of the
    results are those of :func:`molddl.inference.alternate.alternate`.

    Returns ``(states, iterations, status, residual)`` as NumPy arrays, ``status`` holding
    ``CONVERGED``, ``CYCLE`` or ``MAX_ITER`` per sample.
    """
    lib = load()
    lanes = int(lib.molddl_lanes())
    threads = max(1, threads or torch.get_num_threads())
    n = init[0].shape[0]
    t1, t2 = (_arrays(t, h) for t, h in zip(towers, hh, strict=True))
    d = float(cfg.damping)
    config = _Config(
        gauss_seidel=int(cfg.method == "gauss_seidel"),
        cycles=int(cfg.cycles == "fixed_point" and cfg.method == "jacobi" and d == 0),
        check_cycles=int(cfg.cycles != "continue" and cfg.tol > 0),
        max_iter=cfg.max_iter,
        tol=cfg.tol,
        cycle_tol=cfg.tol / 100,
        keep=1 - d,
        damping=d,
    )
    init_np = [np.ascontiguousarray(s.detach().to("cpu", torch.float32).numpy()) for s in init]
    S = [s.copy() for s in init_np]
    P = [np.zeros_like(s) for s in init_np]
    out = [np.zeros_like(s) for s in init_np]
    iterations = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    residual = np.zeros(n, dtype=np.float32)
    towers_c = [
        _Tower(
            s_in=t["s_in"],
            hidden=t["hidden"],
            depth=t["depth"],
            raw=t["raw"],
            kind=t["kind"],
            **{k: _ptr(t[k]) for k in ("H", "M", "W", "b", "Wo", "bo")},
        )
        for t in (t1, t2)
    ]
    todo = np.arange(n)
    while todo.size:  # each call packs the samples still iterating into full blocks
        blocks = -(-todo.size // lanes)
        rows = np.full(blocks * lanes, -1, dtype=np.int64)
        rows[: todo.size] = todo
        arrays = _Lanes(
            rows=_ptr(rows, ctypes.c_int64),
            S1=_ptr(S[0]), S2=_ptr(S[1]), P1=_ptr(P[0]), P2=_ptr(P[1]),
            I1=_ptr(init_np[0]), I2=_ptr(init_np[1]), O1=_ptr(out[0]), O2=_ptr(out[1]),
            iter=_ptr(iterations, ctypes.c_int64),
            status=_ptr(status, ctypes.c_int8),
            residual=_ptr(residual),
        )  # fmt: skip
        code = lib.molddl_alternate(
            ctypes.byref(towers_c[0]),
            ctypes.byref(towers_c[1]),
            ctypes.byref(config),
            ctypes.byref(arrays),
            blocks,
            threads,
        )  # ctypes releases the GIL; the C code runs its own threads
        if code:
            raise MemoryError("the compiled kernel could not allocate its scratch memory")
        todo = todo[status[todo] == ACTIVE]
    return out, iterations, status, residual
