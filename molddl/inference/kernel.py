"""Alternate inference as compiled code on the CPU (``inference.kernel``), with numba.

The folded iteration of :func:`molddl.inference.alternate.alternate` costs a few hundred
multiply-adds per sample; in PyTorch each of its operations costs more to dispatch and to
stream through memory than its arithmetic (``benchmarks/alternate_inference.py``). This
module runs the same iteration for blocks of :data:`LANES` samples, one sample per SIMD lane:
a block copies its samples' rows into ``[feature][lane]`` scratch arrays and keeps its states
there (in registers or L1) for all its iterations, so the innermost loop of every product
runs over the lanes and needs no sum across them.

numba compiles it with LLVM (shipped in llvmlite's wheel, no C compiler) for this CPU on first
use. The machine code is kept in molddl's cache folder (``$MOLDDL_CACHE_DIR/numba`` or the
user cache), and only in a folder that belongs to the current user and that neither its group
nor other users can write; otherwise it is compiled in memory for each process. A damaged
cache file is compiled again. Nothing goes to the system's temporary folder.

The two loops agree to float rounding (``tests/unit/inference/test_kernel.py``): the kernel's
exponential, its fused multiply-adds and its order of summation are its own. A sample's
result does not depend on the other samples or on the thread count; the kernel's result on
one machine is the same on every run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.core import caching, cgutils
from numba.extending import intrinsic
from torch import nn

from molddl.io import user_cache
from molddl.nn.towers import Tower

logger = logging.getLogger(__name__)

LANES = 32  # samples per block, one per SIMD lane
ACTIVE, CONVERGED, CYCLE, MAX_ITER = range(4)  # a sample's status
SIGMOID, SOFTMAX, IDENTITY = range(3)  # a tower's output activation


def _activation_code(tower) -> int:
    """How the tower's raw output becomes its label's state: SIGMOID, SOFTMAX or IDENTITY
    (the label kind's :attr:`~molddl.data.labels.LabelKind.activation`)."""
    return tower.out_kind.activation


def _out_rows(tower) -> int:
    """The output rows the iteration evaluates: the classes of a softmax, else the first row
    (a probability's logit, a value or a Gaussian head's mean)."""
    return tower.out_kind.state_size


def cache_dir() -> Path:
    return user_cache("numba")


def _private_folder(path: Path) -> str | None:
    """Why compiled code must not be cached in ``path`` (created if missing), or ``None``.

    Code loaded from a folder that another user can write runs as this user: the folder must
    belong to this user and be writable by nobody else.
    """
    if not hasattr(os, "getuid"):
        return f"file ownership cannot be checked on {os.name}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as err:
        return f"cannot create {path}: {err}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder"
    if st.st_uid != os.getuid():
        return f"{path} belongs to user id {st.st_uid}, not to this user ({os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by its group or by other users (mode {st.st_mode & 0o777:o})"
    return None


# ---------------------------------------------------------------------------------------------
# The compiled loop. Per-block arrays are [feature][lane] (rows x LANES), so every inner loop
# runs over the lanes of a SIMD register; a sample's arithmetic is the same whatever block or
# thread it lands in.

# fused multiply-adds ("contract") but IEEE arithmetic otherwise: the NaN tests and the
# exponential's rounding step need it. error_model numpy: no Python check on division.
_JIT: dict[str, Any] = {
    "nogil": True,
    "error_model": "numpy",
    "fastmath": {"contract"},
    "cache": False,
}
# the helpers are called only from compiled code: no wrappers for Python or C
_HELPER: dict[str, Any] = {**_JIT, "no_cpython_wrapper": True, "no_cfunc_wrapper": True}
_f32 = np.float32


def _intrinsic(fn: Callable[..., Any]) -> Callable[..., Any]:
    """numba's ``@intrinsic``, typed as compiled code calls it: without ``typingctx`` (numba's
    stubs type the call from Python, which always raises)."""
    return intrinsic(fn)


@_intrinsic
def _stack_lanes(typingctx):
    """A pointer to LANES float32 on the caller's stack (zeroed once): ``numba.carray`` of it
    is a scratch array that LLVM may keep in registers, where a heap array could alias the
    other arrays and stay in memory."""

    def codegen(context, builder, sig, args):
        ptr = cgutils.alloca_once(builder, ir.ArrayType(ir.FloatType(), LANES))
        return builder.bitcast(ptr, ir.PointerType(ir.FloatType()))

    return types.CPointer(types.float32)(), codegen


@_intrinsic
def _pow2(typingctx, t):
    """``2**n`` from ``t = n + 1.5 * 2**23`` (float32, |n| <= 127): n lies in t's low bits,
    moved into a float's exponent with integer operations that vectorize."""

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        bits = builder.bitcast(args[0], i32)
        e = builder.add(builder.sub(bits, i32(0x4B400000)), i32(127))
        return builder.bitcast(builder.shl(e, i32(23)), ir.FloatType())

    return types.float32(types.float32), codegen


@numba.njit(**_HELPER)
def _exp(x):
    """e**x for float32 x, clamped to [-87, 88]: 2**n p(r) with Cephes' polynomial for expf,
    without a libm call so that it vectorizes over the lanes; NaN stays NaN."""
    x = _f32(-87.0) if x < _f32(-87.0) else (_f32(88.0) if x > _f32(88.0) else x)
    t = x * _f32(1.44269504088896341) + _f32(12582912.0)  # round(x / ln 2) in the low bits
    n = t - _f32(12582912.0)
    r = x - n * _f32(0.693359375) + n * _f32(2.12194440e-4)
    p = _f32(1.9875691500e-4)
    p = p * r + _f32(1.3981999507e-3)
    p = p * r + _f32(8.3334519073e-3)
    p = p * r + _f32(4.1665795894e-2)
    p = p * r + _f32(1.6666665459e-1)
    p = p * r + _f32(5.0000001201e-1)
    p = p * r * r + r + _f32(1.0)
    return p * _pow2(t)


@numba.njit(**_HELPER)
def _relu(p):
    """max(p, 0) in one instruction; NaN stays NaN, as in PyTorch."""
    return _f32(0.0) if _f32(0.0) > p else p


@numba.njit(**_HELPER)
def _dense(w, b, x, n, q):
    """q[ln] = b + sum_j w[j] x[j, ln] over n inputs, in two chains (even and odd j) so that a
    multiply-add need not wait on the one before: a fixed order, so a fixed result."""
    a0 = numba.carray(_stack_lanes(), LANES)
    a1 = numba.carray(_stack_lanes(), LANES)
    for ln in range(LANES):
        a0[ln] = _f32(0.0)
        a1[ln] = _f32(0.0)
    j = 0
    while j + 2 <= n:
        w0, w1 = w[j], w[j + 1]
        for ln in range(LANES):
            a0[ln] += w0 * x[j, ln]
            a1[ln] += w1 * x[j + 1, ln]
        j += 2
    if j < n:
        w0 = w[j]
        for ln in range(LANES):
            a0[ln] += w0 * x[j, ln]
    for ln in range(LANES):
        q[ln] = b + (a0[ln] + a1[ln])


@numba.njit(**_HELPER)
def _simple_tower(H, m, wo, bo, state, acc):
    """A tower of molddl's default shape (one input and one output row, no hidden layer) in
    one pass over its hidden units: acc[ln] = bo + sum_j relu(H[j, ln] + state[ln] m[j]) wo[j]."""
    a = numba.carray(_stack_lanes(), LANES)
    s = numba.carray(_stack_lanes(), LANES)
    for ln in range(LANES):
        a[ln] = bo
        s[ln] = state[0, ln]
    for j in range(H.shape[0]):
        mj, wj = m[j], wo[j]
        for ln in range(LANES):
            a[ln] += _relu(H[j, ln] + s[ln] * mj) * wj
    for ln in range(LANES):
        acc[0, ln] = a[ln]


@numba.njit(**_HELPER)
def _simple_pair(H1, H2, m1, m2, wo1, wo2, bo1, bo2, s1, s2, acc1, acc2):
    """Both default towers of a Jacobi step in one pass (the sums of _simple_tower in the same
    order): acc1 = T1(H1, s2), acc2 = T2(H2, s1)."""
    a1 = numba.carray(_stack_lanes(), LANES)
    a2 = numba.carray(_stack_lanes(), LANES)
    x1 = numba.carray(_stack_lanes(), LANES)
    x2 = numba.carray(_stack_lanes(), LANES)
    for ln in range(LANES):
        a1[ln] = bo1
        a2[ln] = bo2
        x1[ln] = s1[0, ln]
        x2[ln] = s2[0, ln]
    for j in range(H1.shape[0]):
        m1j, w1j, m2j, w2j = m1[j], wo1[j], m2[j], wo2[j]
        for ln in range(LANES):
            a1[ln] += _relu(H1[j, ln] + x2[ln] * m1j) * w1j
            a2[ln] += _relu(H2[j, ln] + x1[ln] * m2j) * w2j
    for ln in range(LANES):
        acc1[0, ln] = a1[ln]
        acc2[0, ln] = a2[ln]


@numba.njit(**_HELPER)
def _tower(H, M, W, b, Wo, bo, depth, rows, state, x, y, acc):
    """One tower's raw outputs on a block (acc: rows x LANES) from the other label's state
    (M.shape[0] x LANES); x, y: hidden x LANES scratch."""
    hidden, s_in = H.shape[0], M.shape[0]
    if depth == 0 and s_in == 1 and rows == 1:
        _simple_tower(H, M[0], Wo[0], bo[0], state, acc)
        return
    p = numba.carray(_stack_lanes(), LANES)
    for j in range(hidden):  # first layer: relu(W_h h + c + s M)
        for ln in range(LANES):
            p[ln] = H[j, ln]
        for i in range(s_in):
            mij = M[i, j]
            for ln in range(LANES):
                p[ln] += state[i, ln] * mij
        for ln in range(LANES):
            x[j, ln] = _relu(p[ln])
    for d in range(depth):  # hidden layers: relu(W x + b)
        for o in range(hidden):
            _dense(W[d, o], b[d, o], x, hidden, p)
            for ln in range(LANES):
                y[o, ln] = _relu(p[ln])
        x, y = y, x
    for r in range(rows):  # output layer
        _dense(Wo[r], bo[r], x, hidden, acc[r])


@numba.njit(**_HELPER)
def _to_state(act, acc, rows, out):
    """The label state (rows x LANES) from a tower's raw outputs."""
    if act == SIGMOID:
        for ln in range(LANES):
            out[0, ln] = _f32(1.0) / (_f32(1.0) + _exp(-acc[0, ln]))
    elif act == IDENTITY:
        for ln in range(LANES):
            out[0, ln] = acc[0, ln]
    else:
        top = numba.carray(_stack_lanes(), LANES)
        total = numba.carray(_stack_lanes(), LANES)
        for ln in range(LANES):
            top[ln] = acc[0, ln]
            total[ln] = _f32(0.0)
        for r in range(1, rows):
            for ln in range(LANES):
                top[ln] = acc[r, ln] if acc[r, ln] > top[ln] else top[ln]
        for r in range(rows):
            for ln in range(LANES):
                e = _exp(acc[r, ln] - top[ln])
                out[r, ln] = e
                total[ln] += e
        for r in range(rows):
            for ln in range(LANES):
                out[r, ln] /= total[ln]


@numba.njit(**_HELPER)
def _dist(a, b, m):
    """m[ln] = max(m[ln], the largest |a - b| of lane ln over the rows); NaN wins, as in torch's
    amax."""
    for i in range(a.shape[0]):
        for ln in range(LANES):
            d = abs(a[i, ln] - b[i, ln])
            m[ln] = d if (d > m[ln] or d != d) else m[ln]


@numba.njit(**_HELPER)
def _lane_dist(a, b, ln):
    m = _f32(0.0)
    for i in range(a.shape[0]):
        d = abs(a[i, ln] - b[i, ln])
        m = d if (d > m or d != d) else m
    return m


@numba.njit(**_HELPER)
def _gather(block, src, rows):
    """block[i, ln] = src[rows[ln], i] (0 for a lane without a sample)."""
    for ln in range(LANES):
        r = rows[ln]
        for i in range(block.shape[0]):
            block[i, ln] = src[r, i] if r >= 0 else _f32(0.0)


@numba.njit(**_HELPER)
def _gather_plus(block, src, add, rows):
    """block[i, ln] = src[rows[ln], i] + add[i] (0 for a lane without a sample)."""
    for ln in range(LANES):
        r = rows[ln]
        for i in range(block.shape[0]):
            block[i, ln] = src[r, i] + add[i] if r >= 0 else _f32(0.0)


@numba.njit(**_HELPER)
def _scatter(dst, row, block, ln):
    for i in range(block.shape[0]):
        dst[row, i] = block[i, ln]


@numba.njit(**_HELPER)
def _copy(dst, src):
    for i in range(src.shape[0]):
        for ln in range(LANES):
            dst[i, ln] = src[i, ln]


@numba.njit(**_HELPER)
def _run_block(T1, T2, cfg, rows, S1g, S2g, P1g, P2g, I1g, I2g, O1g, O2g, iters, status,
               residual, x, y, acc1, acc2, N1, N2, S1, S2, P1, P2, I1, I2, H1, H2):  # fmt: skip
    """One block: iterate until every sample has left (converged, period-2 cycle or max_iter)
    or half of those it started with have; write back the states and counts of the others,
    which the caller packs into full blocks for the next call."""
    H1g, M1, W1, b1, Wo1, bo1, depth1, rows1, act1, c1 = T1
    H2g, M2, W2, b2, Wo2, bo2, depth2, rows2, act2, c2 = T2
    gauss_seidel, resolve, check_cycles, max_iter, tol, cycle_tol, keep, damping = cfg
    _gather_plus(H1, H1g, c1, rows)  # W_h h + c
    _gather_plus(H2, H2g, c2, rows)
    _gather(S1, S1g, rows)
    _gather(S2, S2g, rows)
    _gather(P1, P1g, rows)
    _gather(P2, P2g, rows)
    _gather(I1, I1g, rows)
    _gather(I2, I2g, rows)
    s1, s2 = S1.shape[0], S2.shape[0]
    simple1 = depth1 == 0 and M1.shape[0] == 1 and rows1 == 1
    simple2 = depth2 == 0 and M2.shape[0] == 1 and rows2 == 1
    paired = not gauss_seidel and simple1 and simple2 and H1.shape[0] == H2.shape[0]

    act = np.zeros(LANES, np.bool_)  # still iterating
    iter0 = np.zeros(LANES, np.int64)  # iterations run when the block started
    start = 0
    until = max_iter + 1  # the first step at which a lane reaches max_iter
    for ln in range(LANES):
        r = rows[ln]
        if r >= 0 and status[r] == ACTIVE:
            act[ln] = True
            iter0[ln] = iters[r]
            start += 1
            until = min(until, max_iter - iter0[ln])
    active = start
    delta = numba.carray(_stack_lanes(), LANES)
    q = numba.carray(_stack_lanes(), LANES)
    steps = 0
    while 2 * active > start:  # stop once half of the block's samples have left
        steps += 1
        if paired:
            _simple_pair(H1, H2, M1[0], M2[0], Wo1[0], Wo2[0], bo1[0], bo2[0], S1, S2,
                         acc1, acc2)  # fmt: skip
            _to_state(act1, acc1, rows1, N1)
            _to_state(act2, acc2, rows2, N2)
        else:
            _tower(H2, M2, W2, b2, Wo2, bo2, depth2, rows2, S1, x, y, acc2)
            _to_state(act2, acc2, rows2, N2)
            _tower(H1, M1, W1, b1, Wo1, bo1, depth1, rows1, N2 if gauss_seidel else S2, x, y,
                   acc1)  # fmt: skip
            _to_state(act1, acc1, rows1, N1)
        if damping > 0:
            for i in range(s1):
                for ln in range(LANES):
                    N1[i, ln] = keep * N1[i, ln] + damping * S1[i, ln]
            for i in range(s2):
                for ln in range(LANES):
                    N2[i, ln] = keep * N2[i, ln] + damping * S2[i, ln]
        # every lane's tests at once; the lanes are visited one by one only at the steps
        # where one of them leaves. With tol <= 0 no sample converges: the changes matter
        # only at max_iter, for the residual.
        if tol > 0 or steps == until:
            for ln in range(LANES):
                delta[ln] = _f32(0.0)
            _dist(N1, S1, delta)
            _dist(N2, S2, delta)
            leaves = steps == until
            if check_cycles:
                for ln in range(LANES):
                    q[ln] = _f32(0.0)
                _dist(N1, P1, q)
                _dist(N2, P2, q)
                for ln in range(LANES):
                    cyc = iter0[ln] + steps >= 2 and q[ln] < cycle_tol
                    leaves |= act[ln] and (cyc or delta[ln] < tol)
            else:
                for ln in range(LANES):
                    leaves |= act[ln] and delta[ln] < tol
            if leaves:
                until = max_iter + 1
                for ln in range(LANES):
                    if not act[ln]:
                        continue
                    t = iter0[ln] + steps
                    done = delta[ln] < tol
                    cyc = not done and check_cycles and t >= 2 and q[ln] < cycle_tol
                    r = rows[ln]
                    if done or (not cyc and t == max_iter):
                        _scatter(O1g, r, N1, ln)
                        _scatter(O2g, r, N2, ln)
                        status[r] = CONVERGED if done else MAX_ITER
                    elif cyc and resolve:  # the fixed point nearest the start
                        a = max(_lane_dist(S1, I1, ln), _lane_dist(N2, I2, ln))
                        b = max(_lane_dist(N1, I1, ln), _lane_dist(S2, I2, ln))
                        _scatter(O1g, r, S1 if a <= b else N1, ln)
                        _scatter(O2g, r, N2 if a <= b else S2, ln)
                        status[r] = CYCLE
                    elif cyc:  # the state of iteration max_iter: this parity or the other
                        same = (max_iter - t) % 2 == 0
                        _scatter(O1g, r, N1 if same else S1, ln)
                        _scatter(O2g, r, N2 if same else S2, ln)
                        status[r] = CYCLE
                    else:
                        until = min(until, max_iter - iter0[ln])
                        continue
                    iters[r] = t
                    residual[r] = delta[ln]
                    act[ln] = False
                    active -= 1
        if check_cycles:  # P = S, kept for the period-2 test
            _copy(P1, S1)
            _copy(P2, S2)
        _copy(S1, N1)
        _copy(S2, N2)
    for ln in range(LANES):  # the samples still iterating go on in another block
        if act[ln]:
            r = rows[ln]
            iters[r] = iter0[ln] + steps
            _scatter(S1g, r, S1, ln)
            _scatter(S2g, r, S2, ln)
            _scatter(P1g, r, P1, ln)
            _scatter(P2g, r, P2, ln)


@numba.njit(**_HELPER)
def _lanes(rows):
    return np.zeros((rows, LANES), np.float32)


@numba.njit(**_JIT)
def _run_blocks(lo, hi, blocks, T1, T2, cfg, S1, S2, P1, P2, I1, I2, O1, O2, iters, status,
                residual):  # fmt: skip
    """Blocks ``lo`` to ``hi`` of ``blocks`` (nblocks x LANES sample rows, -1 for none), one
    after the other in this thread's scratch."""
    hidden = max(T1[0].shape[1], T2[0].shape[1])
    s1, s2 = S1.shape[1], S2.shape[1]
    x, y = _lanes(hidden), _lanes(hidden)
    acc1, acc2 = _lanes(T1[7]), _lanes(T2[7])
    N1, B1, Q1, J1 = _lanes(s1), _lanes(s1), _lanes(s1), _lanes(s1)
    N2, B2, Q2, J2 = _lanes(s2), _lanes(s2), _lanes(s2), _lanes(s2)
    H1, H2 = _lanes(T1[0].shape[1]), _lanes(T2[0].shape[1])
    for k in range(lo, hi):
        _run_block(T1, T2, cfg, blocks[k], S1, S2, P1, P2, I1, I2, O1, O2, iters, status,
                   residual, x, y, acc1, acc2, N1, N2, B1, B2, Q1, Q2, J1, J2, H1, H2)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The cache: numba's on-disk cache of machine code, in molddl's cache folder only.


class _Locator(caching._CacheLocator):
    """molddl's cache folder, for the functions of this file (fresh while the file is)."""

    def __init__(self, py_func, py_file):
        self._path = str(cache_dir())
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self):  # checked by _disk_cache; numba's own check writes a file
        pass

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        st = os.stat(self._py_file)
        return st.st_mtime, st.st_size

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)


if TYPE_CHECKING:
    from numba.core.caching import CompileResultCacheImpl as _CompileResultCacheImpl
else:  # numba 0.60 names it _CompileResultCacheImpl
    _CompileResultCacheImpl = getattr(caching, "CompileResultCacheImpl", None) or (
        caching._CompileResultCacheImpl
    )


class _CacheImpl(_CompileResultCacheImpl):
    _locator_classes = [_Locator]


class _Cache(caching.FunctionCache):
    """numba's cache, where a file that cannot be read back means a compilation, not an
    error."""

    _impl_class = _CacheImpl

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as err:  # a damaged file: compile again, and start a new index
            logger.warning("compiling the numba kernel again: cannot load it from %s: %r",
                           self.cache_path, err)  # fmt: skip
            with contextlib.suppress(OSError):
                self.flush()
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as err:
            logger.warning("cannot save the numba kernel in %s: %r", self.cache_path, err)


def _disk_cache(dispatcher) -> None:
    """Give ``dispatcher`` molddl's on-disk cache if the folder is private; else it compiles
    in memory (once per process)."""
    why = _private_folder(cache_dir())
    if why is not None:
        logger.info("the numba kernel is compiled in memory, not cached: %s", why)
        return
    cache = _Cache(dispatcher.py_func)
    if Path(cache.cache_path) == cache_dir():  # not a folder from NUMBA_CACHE_LOCATOR_CLASSES
        dispatcher._cache = cache


def _warm_up(fn) -> None:
    """Compile (or load) the kernel's one signature on a one-sample problem."""
    f, i = np.zeros((1, 1), np.float32), np.int64(0)
    v = np.zeros(1, np.float32)
    tower = (f, f, np.zeros((1, 1, 1), np.float32), f, f, v, i, i, i, v)
    cfg = (False, False, False, np.int64(1), *(np.float32(0.0),) * 4)
    one = np.zeros(1, np.int64)
    status = np.zeros(1, np.int8)
    fn(0, 1, np.full((1, LANES), -1, np.int64), tower, tower, cfg, *(f,) * 8, one, status,
       np.zeros(1, np.float32))  # fmt: skip


@functools.cache
def _attempt() -> tuple[Callable[..., None] | None, str | None]:
    """``(kernel, None)``, or ``(None, why not)``: one attempt per process."""
    try:
        _disk_cache(_run_blocks)
        _warm_up(_run_blocks)
    except Exception as err:  # LLVM cannot compile for this machine
        logger.warning("alternate inference on the CPU runs in PyTorch: %r", err)
        return None, f"numba cannot compile the kernel: {err!r}"
    return _run_blocks, None


def unavailable() -> str | None:
    """Why the compiled kernel cannot run here, or ``None`` when it can (compiling it, or
    loading it from the cache, on first call)."""
    return _attempt()[1]


# ---------------------------------------------------------------------------------------------
# Driver.


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
    return cast("list[nn.Linear]", lin) if ok and len(mods) % 3 == 1 else None


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


def _arrays(tower, hh: torch.Tensor) -> tuple:
    """The tower's folded parameters as float32 arrays, with its depth, output rows and
    activation: the tuple the compiled loop takes. ``hh`` is not copied: the loop adds ``c``
    to the rows it gathers (a sum here would cost more than a short run's iterations)."""
    M, c = tower.label_projection()
    layers = _layers(tower)
    assert layers is not None  # unsupported() said the towers are molddl's MLP
    *hidden_layers, out = layers
    rows = _out_rows(tower)
    width = M.shape[1]

    def arr(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    if hidden_layers:
        W = arr(torch.stack([m.weight for m in hidden_layers]))
        b = arr(torch.stack([m.bias for m in hidden_layers]))
    else:
        W, b = np.zeros((0, width, width), np.float32), np.zeros((0, width), np.float32)
    return (
        arr(hh),
        arr(M),
        W,
        b,
        arr(out.weight[:rows]),
        arr(out.bias[:rows]),
        np.int64(len(hidden_layers)),
        np.int64(rows),
        np.int64(_activation_code(tower)),
        arr(c),
    )


class _Job:
    """``fn(lo, hi)`` over blocks ``0..nblocks``, in chunks that shrink as the work runs out,
    taken by whichever threads come: the calling one and the pool's."""

    def __init__(self, fn, nblocks: int, threads: int) -> None:
        self.fn, self.nblocks, self.threads = fn, nblocks, threads
        self.next = 0
        self.busy = 0  # chunks taken and not finished
        self.errors: list[BaseException] = []
        self.cond = threading.Condition()

    def _take(self) -> tuple[int, int] | None:
        with self.cond:
            if self.next >= self.nblocks or self.errors:
                return None
            lo = self.next
            self.next = hi = lo + max(1, (self.nblocks - lo) // (2 * self.threads))
            self.busy += 1
            return lo, hi

    def work(self) -> None:
        while (chunk := self._take()) is not None:
            err = None
            try:
                self.fn(*chunk)  # compiled, without the GIL
            except BaseException as e:  # re-raised in the calling thread
                err = e
            with self.cond:
                self.busy -= 1
                if err is not None:
                    self.errors.append(err)
                self.cond.notify_all()

    def wait(self) -> None:
        """Until the chunks taken are done: a pool thread that comes late finds no work, and
        one that never comes (all busy elsewhere) is not waited for."""
        with self.cond:
            while self.busy:
                self.cond.wait()
        if self.errors:
            raise self.errors[0]


_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """The process's pool of helper threads, started once (and again after a fork)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            workers = max(1, (os.cpu_count() or 1) - 1)
            _pool = os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="molddl-kernel")
        return _pool[1]


def _share(fn, nblocks: int, threads: int) -> None:
    """``fn(lo, hi)`` over blocks ``0..nblocks`` on up to ``threads`` threads."""
    threads = max(1, min(threads, nblocks))
    if threads == 1:
        fn(0, nblocks)
        return
    job = _Job(fn, nblocks, threads)
    pool = _threads()
    for _ in range(threads - 1):
        pool.submit(job.work)
    job.work()
    job.wait()


@torch.inference_mode()
def run(towers, hh: list[torch.Tensor], init: list[torch.Tensor], cfg, threads: int | None = None):
    """Alternate inference with the compiled kernel; the arguments and the meaning of the
    results are those of :func:`molddl.inference.alternate.alternate`.

    Returns ``(states, iterations, status, residual)`` as NumPy arrays, ``status`` holding
    ``CONVERGED``, ``CYCLE`` or ``MAX_ITER`` per sample.
    """
    fn, why = _attempt()
    if fn is None:
        raise RuntimeError(why)
    threads = max(1, threads or torch.get_num_threads())
    n = init[0].shape[0]
    T1, T2 = (_arrays(t, h) for t, h in zip(towers, hh, strict=True))
    d = float(cfg.damping)
    config = (
        cfg.method == "gauss_seidel",
        cfg.cycles == "fixed_point" and cfg.method == "jacobi" and d == 0,  # resolve
        cfg.cycles != "continue" and cfg.tol > 0,  # check_cycles
        np.int64(cfg.max_iter),
        np.float32(cfg.tol),
        np.float32(cfg.tol / 100),  # cycle_tol
        np.float32(1 - d),
        np.float32(d),
    )
    init_np = [np.ascontiguousarray(s.detach().to("cpu", torch.float32).numpy()) for s in init]
    S = [s.copy() for s in init_np]
    P = [np.zeros_like(s) for s in init_np]
    out = [np.zeros_like(s) for s in init_np]
    iterations = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    residual = np.zeros(n, dtype=np.float32)
    todo = np.arange(n)
    while todo.size:  # each pass packs the samples still iterating into full blocks
        nblocks = -(-todo.size // LANES)
        blocks: np.ndarray = np.full(nblocks * LANES, -1, dtype=np.int64)
        blocks[: todo.size] = todo
        blocks = blocks.reshape(nblocks, LANES)

        def chunk(lo, hi, blocks=blocks):
            fn(lo, hi, blocks, T1, T2, config, *S, *P, *init_np, *out, iterations, status,
               residual)  # fmt: skip

        _share(chunk, nblocks, threads)
        todo = todo[status[todo] == ACTIVE]
    return out, iterations, status, residual
