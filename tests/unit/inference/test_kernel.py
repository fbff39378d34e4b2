"""The compiled alternate-inference kernel against the PyTorch loop it replaces on the CPU.

The two differ only in float rounding (the kernel's exponential and order of summation), so
they must leave the loop at the same iteration, for the same reason, with the same states to
rounding, over every label kind, tower depth, update rule, damping and cycle setting.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import torch

from molddl.config import ConfigError, InferenceConfig
from molddl.data.labels import LabelSpec
from molddl.inference import kernel
from molddl.inference.alternate import alternate
from molddl.nn.towers import Tower

# with a compiler present, a kernel that fails to build fails these tests
pytestmark = pytest.mark.skipif(
    kernel.compiler() is None, reason="no C compiler ($CC, cc, gcc, clang)"
)

SPECS = {
    "binary": LabelSpec("a", "binary"),
    "multiclass": LabelSpec("m", "multiclass", 3),
    "regression": LabelSpec("r", "regression"),
}


def _towers(kind1: str, kind2: str, *, layers: int = 2, gaussian: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    s1, s2 = SPECS[kind1], SPECS[kind2]
    return [
        Tower(6, s2, s1, label_dim=4, hidden=24, layers=layers, gaussian=gaussian).eval(),
        Tower(6, s1, s2, label_dim=4, hidden=20 + 4, layers=layers, gaussian=gaussian).eval(),
    ]


def _init(spec: LabelSpec, n: int, gen: torch.Generator) -> torch.Tensor:
    if spec.kind == "binary":
        return torch.rand(n, 1, generator=gen)
    if spec.kind == "multiclass":
        return torch.softmax(torch.randn(n, spec.n_classes, generator=gen), -1)
    return torch.randn(n, 1, generator=gen)


def _inputs(towers, n: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 6, generator=gen)
    with torch.inference_mode():
        hh = [t.encode_h(h) for t in towers]
    return hh, [_init(towers[k].out_spec, n, gen) for k in range(2)]


def _both(towers, hh, init, **settings):
    return [alternate(towers, hh, init, InferenceConfig(kernel=k, **settings)) for k in KERNELS]


KERNELS = ("torch", "compiled")


def _assert_agree(ref, got, tol: float, *, atol: float = 2e-5):
    """The same exit for every sample (converged, cycle, iteration) and states to rounding.

    Rounding can move a change that lies within it of ``tol`` across ``tol``: such a sample
    converges one iteration earlier or later, and its states then differ by up to ``tol``.
    """
    assert torch.equal(ref.converged, got.converged)
    assert torch.equal(ref.cycle, got.cycle)
    off = ref.iterations != got.iterations
    assert off.float().mean() <= 0.05
    assert ((ref.iterations - got.iterations).abs() <= 1).all()
    assert (ref.converged[off]).all()
    earlier = torch.where(ref.iterations < got.iterations, ref.residual, got.residual)[off]
    assert ((tol - earlier).abs() < 1e-6).all()  # it was on the edge
    for k in range(2):
        assert got.states[k].dtype == torch.float32
        torch.testing.assert_close(got.states[k][~off], ref.states[k][~off], atol=atol, rtol=1e-4)
        torch.testing.assert_close(
            got.states[k][off], ref.states[k][off], atol=2 * abs(tol), rtol=0
        )
    torch.testing.assert_close(got.residual[~off], ref.residual[~off], atol=atol, rtol=1e-3)


@pytest.mark.parametrize(
    "kinds",
    [
        ("binary", "binary"),
        ("binary", "multiclass"),
        ("multiclass", "regression"),
        ("regression", "binary"),
        ("regression", "regression"),
    ],
)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_every_label_kind_and_depth_matches_the_pytorch_loop(kinds, layers):
    towers = _towers(*kinds, layers=layers)
    hh, init = _inputs(towers, 77)  # two full blocks of 32 and a partial one
    ref, got = _both(towers, hh, init, tol=1e-5)
    assert ref.converged.all()  # small random towers contract
    _assert_agree(ref, got, 1e-5)


def test_a_gaussian_head_iterates_on_its_mean():
    towers = _towers("regression", "regression", gaussian=True)
    assert towers[0].raw_size == 2
    hh, init = _inputs(towers, 40)
    _assert_agree(*_both(towers, hh, init, tol=1e-5), 1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        {"tol": -1.0, "max_iter": 60},  # a fixed workload
        {"method": "gauss_seidel"},
        {"damping": 0.4},
        {"method": "gauss_seidel", "damping": 0.2, "max_iter": 5},
    ],
)
def test_update_rules_damping_and_max_iter_match_the_pytorch_loop(settings):
    towers = _towers("binary", "multiclass", layers=2)
    hh, init = _inputs(towers, 100)
    ref, got = _both(towers, hh, init, **settings)
    _assert_agree(ref, got, InferenceConfig(**settings).tol)
    if settings.get("max_iter") == 5:
        assert (got.iterations == 5).any() and (~got.converged).any()


def _cycling_towers(n: int = 96):
    """Binary towers each steeply decreasing in the other label: a pair started apart settles
    into a period-2 cycle, one started near agreement converges."""
    spec = SPECS["binary"]
    towers = [Tower(1, spec, spec, label_dim=1, hidden=4).eval() for _ in range(2)]
    with torch.no_grad():
        for t in towers:
            t.embed.table.copy_(torch.tensor([[0.0], [1.0]]))
            t.lin_h.weight.fill_(1.0)
            t.lin_h.bias.zero_()
            t.lin_y.weight.copy_(torch.tensor([[1.0], [2.0], [0.5], [1.5]]))
            out = t.body[2][-1]
            out.weight.fill_(-4.0)
            out.bias.fill_(10.0)
    gen = torch.Generator().manual_seed(3)
    h = torch.rand(n, 1, generator=gen) * 0.2
    with torch.inference_mode():
        hh = [t.encode_h(h) for t in towers]
    init = [torch.rand(n, 1, generator=gen), torch.rand(n, 1, generator=gen)]
    return towers, hh, init


@pytest.mark.parametrize("cycles", ["stop", "fixed_point", "continue"])
@pytest.mark.parametrize("max_iter", [200, 201])
def test_period_two_cycles_leave_alike(cycles, max_iter):
    towers, hh, init = _cycling_towers()
    ref, got = _both(towers, hh, init, cycles=cycles, max_iter=max_iter)
    if cycles == "continue":
        assert not ref.cycle.any() and (ref.iterations == max_iter).any()
    else:
        assert ref.cycle.any() and ref.converged.any()  # the test sees both exits
    _assert_agree(ref, got, InferenceConfig().tol, atol=1e-4)


def _rows(result, rows=slice(None)) -> list[np.ndarray]:
    """The arrays of :func:`kernel.run`'s result (states, iterations, status, residual)."""
    states, *rest = result
    return [a[rows] for a in (*states, *rest)]


def test_a_samples_result_depends_neither_on_the_others_nor_on_threads():
    towers = _towers("binary", "binary", seed=4)
    hh, init = _inputs(towers, 150)
    cfg = InferenceConfig(kernel="compiled", tol=1e-6)
    whole = _rows(kernel.run(towers, hh, init, cfg, threads=2))
    for threads in (1, 3):
        again = _rows(kernel.run(towers, hh, init, cfg, threads=threads))
        assert all(np.array_equal(a, b) for a, b in zip(whole, again, strict=True))
    rows = np.array([149, 3, 64, 65, 0])
    part = _rows(kernel.run(towers, [h[rows] for h in hh], [s[rows] for s in init], cfg))
    assert all(np.array_equal(a, b[rows]) for a, b in zip(part, whole, strict=True))


def test_auto_uses_the_kernel_on_the_cpu_and_compiled_refuses_what_it_cannot_run():
    towers = _towers("binary", "binary")
    hh, init = _inputs(towers, 10)
    auto = alternate(towers, hh, init, InferenceConfig())
    compiled = alternate(towers, hh, init, InferenceConfig(kernel="compiled"))
    for k in range(2):
        assert torch.equal(auto.states[k], compiled.states[k])
    towers[0].train()  # dropout: only the PyTorch loop does that
    with pytest.raises(ConfigError, match="inference.kernel.*training mode"):
        alternate(towers, hh, init, InferenceConfig(kernel="compiled"))
    torch.manual_seed(0)  # the same dropout masks for both
    ref = alternate(towers, hh, init, InferenceConfig(kernel="torch"))
    torch.manual_seed(0)
    auto = alternate(towers, hh, init, InferenceConfig())  # falls back to the PyTorch loop
    for k in range(2):
        assert torch.equal(auto.states[k], ref.states[k])


def test_without_a_compiler_auto_falls_back_and_compiled_says_why(monkeypatch):
    towers = _towers("binary", "binary")
    hh, init = _inputs(towers, 10)
    monkeypatch.setenv("CC", "")
    ref = alternate(towers, hh, init, InferenceConfig(kernel="torch"))
    auto = alternate(towers, hh, init, InferenceConfig())
    for k in range(2):
        assert torch.equal(auto.states[k], ref.states[k])
    with pytest.raises(ConfigError, match="no C compiler"):
        alternate(towers, hh, init, InferenceConfig(kernel="compiled"))


def test_a_compiler_that_fails_is_tried_once_and_auto_falls_back(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    cc = tmp_path / "brokencc"
    cc.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "broken compiler" >&2\nexit 1\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(tmp_path))
    towers = _towers("binary", "binary")
    hh, init = _inputs(towers, 10)
    try:
        assert "broken compiler" in kernel.unavailable()
        tried = calls.read_text()
        assert alternate(towers, hh, init, InferenceConfig()).converged.all()  # PyTorch loop
        with pytest.raises(ConfigError, match="broken compiler"):
            alternate(towers, hh, init, InferenceConfig(kernel="compiled"))
        assert calls.read_text() == tried  # not tried again in this process
        assert not list((tmp_path / "kernels").iterdir())  # nothing half-built left
    finally:
        kernel._attempt.cache_clear()


def test_the_build_is_cached_and_a_damaged_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(tmp_path))
    kernel._attempt.cache_clear()
    # a damaged file where the build goes (never rewrite a loaded library in place)
    target = tmp_path / "kernels" / f"alternate-{kernel._key(kernel.compiler())}.so"
    target.parent.mkdir()
    target.write_bytes(b"not a shared library")
    try:
        assert kernel.load().molddl_lanes() == 32
        assert target.stat().st_size > 1000
        assert [p.name for p in target.parent.iterdir()] == [target.name]  # no leftovers
        kernel._attempt.cache_clear()
        before = target.stat().st_mtime_ns
        kernel.load()  # a new process finds the build in the cache
        assert target.stat().st_mtime_ns == before
    finally:
        kernel._attempt.cache_clear()


def test_a_compiler_without_the_native_flags_builds_the_portable_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kernel, "FLAGS", [*kernel.FLAGS, "-fno-such-flag-anywhere"])
    bad = subprocess.run(
        [kernel.compiler(), *kernel.FLAGS, str(kernel.SOURCE), "-o", "/dev/null"],
        capture_output=True,
    )
    assert bad.returncode != 0  # the native flags fail here
    kernel._attempt.cache_clear()
    try:
        towers = _towers("binary", "multiclass", layers=2)
        hh, init = _inputs(towers, 50)
        _assert_agree(*_both(towers, hh, init, tol=1e-5), 1e-5)
        assert len(list((tmp_path / "kernels").glob("alternate-*.so"))) == 1
    finally:
        kernel._attempt.cache_clear()


def _c_fields(src: str, name: str) -> list[str]:
    end = src.index(f"}} {name};")
    start = src.rindex("typedef struct {", 0, end) + len("typedef struct {")
    body = re.sub(r"/\*.*?\*/", "", src[start:end], flags=re.S)
    names = []
    for decl in filter(None, (d.strip() for d in body.split(";"))):
        decl = re.sub(r"^(const\s+)?(float|int64_t|int8_t)\s*", "", decl)
        names += [d.strip().lstrip("*").strip() for d in decl.split(",")]
    return names


def test_the_structures_match_the_c_source():
    """A field added on one side only would shift every pointer after it."""
    src = kernel.SOURCE.read_text()
    for struct, name in ((kernel._Tower, "tower_t"), (kernel._Config, "config_t"),
                         (kernel._Lanes, "lanes_t")):  # fmt: skip
        assert _c_fields(src, name) == [f for f, _ in struct._fields_], name


def test_the_first_iteration_is_never_taken_for_a_cycle():
    """Only from the second iteration on is there a state two iterations back to compare."""
    towers = _towers("regression", "regression")
    with torch.no_grad():
        for t in towers:  # towers that always answer 0
            t.body[2][-1].weight.zero_()
            t.body[2][-1].bias.zero_()
    hh, _ = _inputs(towers, 5)
    init = [torch.full((5, 1), 0.5), torch.full((5, 1), -0.5)]
    ref, got = _both(towers, hh, init)
    assert ref.iterations.tolist() == [2] * 5 and ref.converged.all()
    _assert_agree(ref, got, InferenceConfig().tol)
