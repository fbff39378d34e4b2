"""The PyTorch loop's blocks (``inference.sync_every``): any block size gives the outcomes of
the per-iteration loop (``sync_every: 1``), and a block asks the device for nothing.

A sample goes through the same operations at every block size; only its place in the batch
differs (a row that left waits, frozen, for the block's end). PyTorch's kernels (a matrix
product, the vectorised sigmoid) may round a row by its place in the batch, so the exact
comparisons use the same random towers evaluated row by row (:class:`Rowwise`); the towers
themselves are compared to rounding, and exactly while the batch keeps its rows.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_alternate import _bistable_towers
from test_kernel import _assert_agree, _cycling_towers, _inputs, _towers
from torch import nn
from torch.overrides import TorchFunctionMode

from molddl.config import Config, ConfigError, InferenceConfig
from molddl.inference.alternate import AlternateResult, _iterate, _setup, _torch_loop

BLOCKS = [2, 5, 32, 1000]  # 1000: the whole run in one block


class Rowwise:
    """A tower (what alternate inference uses of it) whose every row is computed on its own,
    so that a row rounds alike whatever rows are beside it: elementwise products and sums
    along the row instead of matrix products, and the label state in float64 (PyTorch's
    float32 sigmoid rounds a vector's elements and the last few scalar ones differently)."""

    def __init__(self, tower) -> None:
        self.tower, self.out_kind = tower, _Float64State(tower.out_kind)

    def label_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tower.label_projection()

    def step(self, base: torch.Tensor, M: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x = (base + (state.unsqueeze(-1) * M).sum(-2)).relu()
        for layer in self.tower.body[2]:
            if isinstance(layer, nn.Linear):
                x = (x.unsqueeze(-2) * layer.weight).sum(-1) + layer.bias
            else:
                x = layer(x)
        return x


class _Float64State:
    def __init__(self, kind) -> None:
        self.kind = kind

    def to_state(self, raw: torch.Tensor) -> torch.Tensor:
        return self.kind.to_state(raw.double()).float()


def _run(towers, hh, init, every: int, **settings) -> AlternateResult:
    cfg = InferenceConfig(kernel="torch", sync_every=every, **settings)
    with torch.inference_mode():
        return _torch_loop(towers, hh, init, cfg)


def _assert_same(ref: AlternateResult, got: AlternateResult) -> None:
    """Bit for bit (NaN where the reference has NaN)."""
    for name in ("states", "iterations", "converged", "residual", "cycle"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), rtol=0, atol=0,
                                   equal_nan=True, msg=name)  # fmt: skip


def _mixed(n: int = 96):
    """Row-wise cycling towers over ``n`` samples, a few of them never settling (NaN inputs):
    in one batch some samples converge, some enter a period-2 cycle, some run to max_iter."""
    towers, hh, init = _cycling_towers(n)
    hh = [h.clone() for h in hh]
    hh[0][[3, 40, 77]] = float("nan")
    return [Rowwise(t) for t in towers], hh, init


def test_rowwise_towers_round_a_row_alike_in_any_batch():
    """The premise of the exact comparisons below."""
    towers = [Rowwise(t) for t in _towers("binary", "multiclass", layers=3)]
    hh, init = _inputs([t.tower for t in towers], ("binary", "multiclass"), 40)
    cycling, chh, cinit = _mixed()
    with torch.inference_mode():
        for tower, H, state in ((towers[0], hh[0], init[1]), (cycling[1], chh[1], cinit[0])):
            M, c = tower.label_projection()
            H, state = H[:40], state[:40]
            full = tower.out_kind.to_state(tower.step(H + c, M, state))
            for a in range(40):
                for b in range(a + 1, 41):
                    part = tower.out_kind.to_state(tower.step(H[a:b] + c, M, state[a:b]))
                    assert torch.equal(part, full[a:b])


SETTINGS = [
    {},  # cycles=stop
    {"max_iter": 201},  # the other parity of the stop rule
    {"max_iter": 6},  # slow samples stop at max_iter
    {"cycles": "fixed_point"},
    {"cycles": "fixed_point", "max_iter": 7},
    {"cycles": "continue", "max_iter": 50},
    {"method": "gauss_seidel"},
    {"method": "gauss_seidel", "cycles": "fixed_point"},  # falls back to stop
    {"damping": 0.4},
    {"damping": 0.2, "cycles": "fixed_point", "max_iter": 9},
    {"tol": -1.0, "max_iter": 40},  # a fixed workload
    {"tol": 0.0, "max_iter": 3},
    {"max_iter": 0},
    {"max_iter": 1},
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("every", BLOCKS)
def test_blocks_leave_as_the_per_iteration_loop(settings, every):
    towers, hh, init = _mixed()
    ref = _run(towers, hh, init, 1, **settings)
    _assert_same(ref, _run(towers, hh, init, every, **settings))


def test_the_mixed_batch_sees_every_exit():
    towers, hh, init = _mixed()
    res = _run(towers, hh, init, 32)
    ran_out = ~res.converged & ~res.cycle
    assert res.converged.sum() > 10 and res.cycle.sum() > 10
    assert ran_out.nonzero().squeeze(-1).tolist() == [3, 40, 77]
    assert (res.iterations[ran_out] == 1000).all()
    # samples leave at several iterations: within a block, frozen rows sit beside live ones
    assert res.iterations[~ran_out].unique().numel() >= 4
    early = _run(towers, hh, init, 32, max_iter=6)
    assert early.converged.any() and early.cycle.any()
    assert (~early.converged & ~early.cycle).sum() > 3


@pytest.mark.parametrize(
    "kinds",
    [("binary", "multiclass"), ("multiclass", "regression"), ("regression", "regression")],
)
@pytest.mark.parametrize("every", [3, 32])
def test_blocks_of_random_towers(kinds, every):
    towers = [Rowwise(t) for t in _towers(*kinds, layers=2)]
    hh, init = _inputs([t.tower for t in towers], kinds, 77)
    for settings in ({"tol": 1e-5}, {"method": "gauss_seidel", "damping": 0.3, "max_iter": 4}):
        ref = _run(towers, hh, init, 1, **settings)
        _assert_same(ref, _run(towers, hh, init, every, **settings))


@pytest.mark.parametrize("init", [(0.9, 0.3), (0.7, 0.1), (0.9, 0.9), (0.2, 0.6)])
@pytest.mark.parametrize("cycles", ["stop", "fixed_point"])
def test_a_bistable_pair_resolves_alike(init, cycles):
    """Jacobi on a steep bistable pair: from a mixed start the sample cycles and, under
    fixed_point, returns the fixed point nearest its start; from agreement it converges."""
    # the sample under test, one that cycles, two that converge
    starts = [
        torch.tensor([[init[0]], [0.9], [0.8], [0.1]]),
        torch.tensor([[init[1]], [0.1], [0.8], [0.1]]),
    ]
    hh = [torch.zeros(4, 1)] * 2
    ref = _run(_bistable_towers(), hh, starts, 1, cycles=cycles, max_iter=301)
    assert ref.cycle[1] and ref.converged[2:].all()
    for every in BLOCKS:
        _assert_same(ref, _run(_bistable_towers(), hh, starts, every, cycles=cycles, max_iter=301))


def test_no_samples():
    towers, hh, init = _mixed()
    empty = [h[:0] for h in hh], [s[:0] for s in init]
    for every in (1, 32):
        res = _run(towers, *empty, every)
        assert res.states[0].shape == (0, 1) and res.iterations.shape == (0,)


@pytest.mark.parametrize("settings", [{}, {"cycles": "fixed_point"}, {"tol": -1.0}])
def test_the_towers_themselves_agree_to_rounding(settings):
    """With PyTorch's kernels a sample rounds by its place in the batch: the outcomes agree as
    the numba kernel and the PyTorch loop do (the same exits, states to rounding)."""
    towers, hh, init = _cycling_towers()
    ref = _run(towers, hh, init, 1, max_iter=200, **settings)
    for every in (7, 32):
        got = _run(towers, hh, init, every, max_iter=200, **settings)
        _assert_agree(ref, got, InferenceConfig(**settings).tol, atol=1e-4)


@pytest.mark.parametrize("settings", [{"tol": -1.0, "max_iter": 60}, {"max_iter": 1}])
def test_the_towers_themselves_are_exact_while_the_batch_keeps_its_rows(settings):
    towers = _towers("binary", "multiclass", layers=2)
    hh, init = _inputs(towers, ("binary", "multiclass"), 100)
    ref = _run(towers, hh, init, 1, **settings)
    _assert_same(ref, _run(towers, hh, init, 32, **settings))


# -- no host synchronisation within a block ---------------------------------------------------

#: the calls that make the host wait for a GPU (or would, on one)
SYNCING = {
    "any", "all", "item", "tolist", "numpy", "cpu", "nonzero", "argwhere", "masked_select",
    "unique", "__bool__", "__int__", "__float__", "__index__", "equal", "allclose",
}  # fmt: skip


class SyncRecorder(TorchFunctionMode):
    """Records every call that waits for the device's answer: value reads (``item``,
    ``bool``…), data-dependent shapes (``nonzero``, a boolean mask as an index) and copies to
    the host."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in SYNCING or (name == "where" and len(args) + len(kwargs) == 1):
            self.calls.append(name)
        elif name in ("__getitem__", "__setitem__") and _has_mask(args[1]):
            self.calls.append(f"{name} with a boolean mask")
        elif name == "to" and any(_is_host(a) for a in (*args[1:], *kwargs.values())):
            self.calls.append("to the host")
        return func(*args, **kwargs)


def _has_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _is_host(arg) -> bool:
    return str(arg) == "cpu"


def test_the_recorder_sees_each_kind_of_synchronisation():
    """The test below can fail: each of these would be recorded inside a block."""
    x = torch.randn(6)
    mask = x > 0
    for sync in (
        lambda: mask.any(),
        lambda: x.sum().item(),
        lambda: bool(mask[0]),
        lambda: x[mask],
        lambda: mask.nonzero(),
        lambda: torch.where(mask),
        lambda: int(x.argmax()),
        lambda: x.to("cpu"),
    ):
        with SyncRecorder() as rec:
            sync()
        assert rec.calls, sync


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_iter": 201},
        {"cycles": "fixed_point"},
        {"method": "gauss_seidel", "damping": 0.3},
        {"tol": -1.0},
    ],
)
def test_a_block_asks_the_device_for_nothing(settings):
    towers, hh, init = _mixed()
    loop, w = _setup(towers, hh, init, InferenceConfig(**settings))
    with torch.inference_mode(), SyncRecorder() as rec:
        one = _iterate(w, 1, 1, loop)
        w = _iterate(w, 1, 40, loop)  # samples leave, beside frozen ones
    assert rec.calls == []
    assert one.left is not None and w.left is not None and w.S[0].shape[0] == 96
    if settings.get("tol", 1) > 0:  # the block froze samples at several iterations
        assert w.left.sum() > 10 and w.it is not None and w.it[w.left].unique().numel() > 2


@pytest.mark.parametrize(("every", "blocks"), [(1, 100), (32, 4), (100, 1), (1000, 1)])
def test_the_host_waits_once_per_block(every, blocks):
    towers = _towers("binary", "multiclass", layers=2)
    hh, init = _inputs(towers, ("binary", "multiclass"), 50)
    with SyncRecorder() as rec:
        _run(towers, hh, init, every, tol=-1.0, max_iter=100)
    assert rec.calls == ["nonzero"] * blocks


# -- the setting -------------------------------------------------------------------------------


def test_sync_every_defaults_by_device_and_takes_a_value():
    assert InferenceConfig().iterations_per_sync("cpu") == 1
    assert InferenceConfig().iterations_per_sync("cuda") == 32
    cfg = Config.from_dict({"inference": {"sync_every": 8}}).inference
    assert cfg.iterations_per_sync("cpu") == cfg.iterations_per_sync("cuda") == 8


@pytest.mark.parametrize("value", [0, -3])
def test_sync_every_below_one_names_the_key(value):
    with pytest.raises(ConfigError, match=r"config key 'inference\.sync_every' must be >= 1"):
        Config.from_dict({"inference": {"sync_every": value}})
    with pytest.raises(ConfigError, match=r"inference\.sync_every"):
        Config().override([f"inference.sync_every={value}"])


# -- on a GPU (skipped without one) ------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("settings", [{}, {"cycles": "fixed_point"}, {"tol": -1.0}])
def test_on_cuda_a_block_never_synchronises(settings):
    towers, hh, init = _cycling_towers()
    dev = torch.device("cuda")
    towers = [t.to(dev) for t in towers]
    hh, init = [h.to(dev) for h in hh], [s.to(dev) for s in init]
    loop, w = _setup(towers, hh, init, InferenceConfig(**settings))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.inference_mode():
            _iterate(w, 1, 1, loop)
            _iterate(w, 1, 40, loop)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _cpu(res: AlternateResult) -> AlternateResult:
    fields = (res.iterations, res.converged, res.residual, res.cycle)
    return AlternateResult([s.cpu() for s in res.states], *(f.cpu() for f in fields))


@cuda
@pytest.mark.parametrize("settings", [{}, {"cycles": "fixed_point"}, {"method": "gauss_seidel"}])
def test_on_cuda_the_default_blocks_agree_with_the_per_iteration_loop(settings):
    towers, hh, init = _cycling_towers(512)
    dev = torch.device("cuda")
    towers = [t.to(dev) for t in towers]
    hh, init = [h.to(dev) for h in hh], [s.to(dev) for s in init]
    cfg = InferenceConfig(kernel="torch", max_iter=200, **settings)
    with torch.inference_mode():
        ref = _cpu(_torch_loop(towers, hh, init, dataclasses.replace(cfg, sync_every=1)))
        got = _cpu(_torch_loop(towers, hh, init, cfg))  # auto: 32 on a GPU
    assert ref.converged.any()
    assert ref.cycle.any() or settings.get("method") == "gauss_seidel"
    _assert_agree(ref, got, cfg.tol, atol=1e-4)
