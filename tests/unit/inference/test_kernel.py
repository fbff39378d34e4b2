"""The numba alternate-inference kernel against the PyTorch loop it replaces on the CPU, and
the kernel's on-disk cache.

The two loops differ only in float rounding (the kernel's exponential, fused multiply-adds and
order of summation), so they must leave the loop at the same iteration, for the same reason,
with the same states to rounding, over every label kind, tower depth, update rule, damping and
cycle setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from molddl.config import Config, ConfigError, InferenceConfig
from molddl.data.labels import LabelSpec
from molddl.inference import kernel
from molddl.inference.alternate import alternate
from molddl.nn.towers import Tower

SPECS = {
    "binary": LabelSpec("a", "binary"),
    "multiclass": LabelSpec("m", "multiclass", 3),
    "regression": LabelSpec("r", "regression"),
}
INIT = {  # a random initial state of each kind of label
    "binary": lambda n, gen: torch.rand(n, 1, generator=gen),
    "multiclass": lambda n, gen: torch.softmax(torch.randn(n, 3, generator=gen), -1),
    "regression": lambda n, gen: torch.randn(n, 1, generator=gen),
}
KERNELS = ("torch", "numba")


def _towers(kind1: str, kind2: str, *, layers: int = 2, gaussian: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    s1, s2 = SPECS[kind1], SPECS[kind2]
    return [
        Tower(6, s2, s1, label_dim=4, hidden=24, layers=layers, gaussian=gaussian).eval(),
        Tower(6, s1, s2, label_dim=4, hidden=20 + 4, layers=layers, gaussian=gaussian).eval(),
    ]


def _inputs(towers, kinds, n: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 6, generator=gen)
    with torch.inference_mode():
        hh = [t.encode_h(h) for t in towers]
    return hh, [INIT[kind](n, gen) for kind in kinds]


def _both(towers, hh, init, **settings):
    return [alternate(towers, hh, init, InferenceConfig(kernel=k, **settings)) for k in KERNELS]


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
    hh, init = _inputs(towers, kinds, 77)  # two full blocks of 32 and a partial one
    ref, got = _both(towers, hh, init, tol=1e-5)
    assert ref.converged.all()  # small random towers contract
    _assert_agree(ref, got, 1e-5)


def test_a_gaussian_head_iterates_on_its_mean():
    towers = _towers("regression", "regression", gaussian=True)
    assert towers[0].raw_size == 2
    hh, init = _inputs(towers, ("regression", "regression"), 40)
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
    hh, init = _inputs(towers, ("binary", "multiclass"), 100)
    ref, got = _both(towers, hh, init, **settings)
    _assert_agree(ref, got, InferenceConfig(**settings).tol)
    if settings.get("max_iter") == 5:
        assert (got.iterations == 5).any() and (~got.converged).any()


def test_default_towers_over_many_fixed_iterations_stay_within_rounding():
    """molddl's default towers (binary labels, no hidden layer: the one-pass path for both
    towers) at the benchmark's fixed workload: the rounding does not grow with iterations."""
    towers = _towers("binary", "binary", layers=2, seed=5)
    hh, init = _inputs(towers, ("binary", "binary"), 70)
    ref, got = _both(towers, hh, init, tol=-1.0, max_iter=1000)
    assert (got.iterations == 1000).all() and not got.converged.any()
    for k in range(2):
        torch.testing.assert_close(got.states[k], ref.states[k], atol=1e-5, rtol=0)


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


def test_the_first_iteration_is_never_taken_for_a_cycle():
    """Only from the second iteration on is there a state two iterations back to compare."""
    towers = _towers("regression", "regression")
    with torch.no_grad():
        for t in towers:  # towers that always answer 0
            t.body[2][-1].weight.zero_()
            t.body[2][-1].bias.zero_()
    hh, _ = _inputs(towers, ("regression", "regression"), 5)
    init = [torch.full((5, 1), 0.5), torch.full((5, 1), -0.5)]
    ref, got = _both(towers, hh, init)
    assert ref.iterations.tolist() == [2] * 5 and ref.converged.all()
    _assert_agree(ref, got, InferenceConfig().tol)


def test_nan_inputs_stay_nan_as_in_the_pytorch_loop():
    towers = _towers("binary", "multiclass", layers=2)
    hh, init = _inputs(towers, ("binary", "multiclass"), 40)
    hh = [h.clone() for h in hh]
    hh[0][3] = float("nan")
    hh[1][7] = float("nan")
    ref, got = _both(towers, hh, init, max_iter=50)
    for k in range(2):
        assert torch.equal(got.states[k].isnan(), ref.states[k].isnan())
    assert torch.equal(got.converged, ref.converged) and not got.converged[[3, 7]].any()
    assert (got.iterations[[3, 7]] == 50).all()


def _rows(result, rows=slice(None)) -> list[np.ndarray]:
    """The arrays of :func:`kernel.run`'s result (states, iterations, status, residual)."""
    states, *rest = result
    return [a[rows] for a in (*states, *rest)]


@pytest.mark.parametrize("kinds", [("binary", "binary"), ("multiclass", "regression")])
def test_a_samples_result_depends_neither_on_the_others_nor_on_threads(kinds):
    towers = _towers(*kinds, seed=4)
    hh, init = _inputs(towers, kinds, 300)
    cfg = InferenceConfig(kernel="numba", tol=1e-6, max_iter=300)
    whole = _rows(kernel.run(towers, hh, init, cfg, threads=2))
    assert len(set(whole[2].tolist())) > 1  # samples leave at different iterations
    for threads in (1, 3, 8):
        again = _rows(kernel.run(towers, hh, init, cfg, threads=threads))
        assert all(np.array_equal(a, b) for a, b in zip(whole, again, strict=True))
    rows = np.array([299, 3, 64, 65, 0, 150])
    part = _rows(kernel.run(towers, [h[rows] for h in hh], [s[rows] for s in init], cfg))
    assert all(np.array_equal(a, b[rows]) for a, b in zip(part, whole, strict=True))
    order = np.random.default_rng(0).permutation(300)
    shuffled = kernel.run(towers, [h[order] for h in hh], [s[order] for s in init], cfg)
    assert all(np.array_equal(a, b[order]) for a, b in zip(_rows(shuffled), whole, strict=True))


def test_auto_uses_the_kernel_on_the_cpu_and_numba_refuses_what_it_cannot_run():
    towers = _towers("binary", "binary")
    hh, init = _inputs(towers, ("binary", "binary"), 10)
    auto = alternate(towers, hh, init, InferenceConfig())
    numba = alternate(towers, hh, init, InferenceConfig(kernel="numba"))
    direct = _rows(kernel.run(towers, hh, init, InferenceConfig()))
    for k in range(2):
        assert torch.equal(auto.states[k], numba.states[k])
        assert np.array_equal(auto.states[k].numpy(), direct[k])
    towers[0].train()  # dropout: only the PyTorch loop does that
    with pytest.raises(ConfigError, match="inference.kernel.*training mode"):
        alternate(towers, hh, init, InferenceConfig(kernel="numba"))
    torch.manual_seed(0)  # the same dropout masks for both
    ref = alternate(towers, hh, init, InferenceConfig(kernel="torch"))
    torch.manual_seed(0)
    auto = alternate(towers, hh, init, InferenceConfig())  # falls back to the PyTorch loop
    for k in range(2):
        assert torch.equal(auto.states[k], ref.states[k])


def test_compiled_is_no_longer_a_kernel_name():
    with pytest.raises(ConfigError, match="inference.kernel.*auto, numba, torch"):
        Config.from_dict({"inference": {"kernel": "compiled"}})


@pytest.mark.slow
def test_a_trained_model_predicts_alike_with_both_loops():
    from molddl.data.synthetic import make_dual_label
    from molddl.models.estimator import DualLabelModel

    train = make_dual_label(600, missing_rate=0.4, seed=0)
    test = make_dual_label(300, seed=2)
    cfg = {
        "model": {"encoder": "mlp", "hidden": 32, "layers": 2, "tower_hidden": 32},
        "train": {"max_epochs": 4},
        "device": "cpu",
        "seed": 0,
    }
    model = DualLabelModel(cfg).fit(train)
    blank = test.with_labels(np.full_like(test.y, np.nan))
    ref = model.predict_arrays(blank, inference=InferenceConfig(kernel="torch"))
    got = model.predict_arrays(blank)  # auto: the numba kernel on the CPU
    again = model.predict_arrays(blank, inference=InferenceConfig(kernel="numba"))
    for a, b, c in zip(ref, got, again, strict=True):
        assert np.array_equal(b, c)
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# The on-disk cache


def test_the_cache_folder_must_be_private(tmp_path, monkeypatch):
    folder = tmp_path / "numba"
    assert kernel._private_folder(folder) is None  # created, 0700, ours
    assert folder.is_dir() and (folder.stat().st_mode & 0o077) == 0
    for mode in (0o707, 0o770, 0o722):  # writable by others, by the group
        folder.chmod(mode)
        assert "writable by its group or by other users" in kernel._private_folder(folder)
    folder.chmod(0o755)  # readable by others is fine
    assert kernel._private_folder(folder) is None
    monkeypatch.setattr(os, "getuid", lambda: folder.stat().st_uid + 1)
    assert "belongs to user id" in kernel._private_folder(folder)
    monkeypatch.undo()
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert "cannot create" in kernel._private_folder(blocked / "numba")


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_folder_others_can_write_gets_no_disk_cache(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(tmp_path))
    (tmp_path / "numba").mkdir(mode=0o700)
    (tmp_path / "numba").chmod(mode)

    @kernel.numba.njit(cache=False)
    def twice(x):
        return 2 * x

    kernel._disk_cache(twice)
    assert not isinstance(twice._cache, kernel._Cache)
    (tmp_path / "numba").chmod(0o700)
    kernel._disk_cache(twice)
    assert isinstance(twice._cache, kernel._Cache)
    assert twice._cache.cache_path == str(tmp_path / "numba")


def _triple(x):
    return 3 * x


def _cached_triple():
    """A new dispatcher of ``_triple`` with the kernel's cache, as in a new process."""
    disp = kernel.numba.njit(cache=False)(_triple)
    kernel._disk_cache(disp)
    assert isinstance(disp._cache, kernel._Cache)
    return disp


@pytest.mark.parametrize("damaged", [".nbi", ".nbc", ""])
def test_a_damaged_cache_file_is_compiled_again_and_replaced(tmp_path, monkeypatch, damaged):
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(tmp_path))
    first = _cached_triple()
    assert first(2.0) == 6.0 and sum(first.stats.cache_misses.values()) == 1
    loaded = _cached_triple()
    assert loaded(2.0) == 6.0 and sum(loaded.stats.cache_hits.values()) == 1
    files = list((tmp_path / "numba").iterdir())
    assert {p.suffix for p in files} == {".nbi", ".nbc"}
    for p in files:
        if p.name.endswith(damaged):  # "": every file
            p.write_bytes(b"\x80\x04garbage, not a pickle" * 10)
    again = _cached_triple()
    assert again(2.0) == 6.0 and sum(again.stats.cache_hits.values()) == 0  # compiled
    repaired = _cached_triple()
    assert repaired(2.0) == 6.0 and sum(repaired.stats.cache_hits.values()) == 1


_CHILD = textwrap.dedent(
    """
    import json, logging, sys, tempfile
    import numpy as np, torch
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from molddl.config import InferenceConfig
    from molddl.data.labels import LabelSpec
    from molddl.inference import kernel
    from molddl.nn.towers import Tower

    torch.manual_seed(0)
    a, m = LabelSpec("a", "binary"), LabelSpec("m", "multiclass", 3)
    towers = [Tower(4, m, a, hidden=8).eval(), Tower(4, a, m, hidden=8).eval()]
    h = torch.randn(50, 4)
    hh = [t.encode_h(h).detach() for t in towers]
    init = [torch.rand(50, 1), torch.softmax(torch.randn(50, 3), -1)]
    states, iterations, status, residual = kernel.run(towers, hh, init, InferenceConfig())
    stats = kernel._run_blocks.stats
    print(json.dumps({
        "states": [s.tolist() for s in states], "iterations": iterations.tolist(),
        "hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
        "tmp": tempfile.gettempdir(),
    }))
    """
)


def _child(cache, tmp):
    """Run the kernel in a new process with ``cache`` as molddl's cache folder and ``tmp`` as
    the system's temporary folder: its JSON report and its log."""
    env = {**os.environ, "MOLDDL_CACHE_DIR": str(cache), "TMPDIR": str(tmp)}
    env.pop("NUMBA_CACHE_DIR", None)
    run = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1]), run.stderr


@pytest.mark.slow
def test_the_disk_cache_is_private_survives_damage_and_avoids_the_temp_folder(tmp_path):
    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    tmp.mkdir()
    folder = cache / "numba"

    first, _ = _child(cache, tmp)  # compiles, saves
    assert first["tmp"] == str(tmp) and first["misses"] == 1 and first["hits"] == 0
    files = sorted(p.name for p in folder.iterdir())
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files)
    assert (folder.stat().st_mode & 0o077) == 0

    second, _ = _child(cache, tmp)  # loads
    assert second["hits"] == 1 and second["misses"] == 0
    assert second["states"] == first["states"] and second["iterations"] == first["iterations"]

    # a cache others can write is not read (nor written)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    folder.chmod(0o770)
    shared, log = _child(cache, tmp)
    assert shared["hits"] == 0 and "compiled in memory, not cached" in log
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert shared["states"] == first["states"]
    folder.chmod(0o700)

    # damaged files: compiled again, and saved again
    for p in folder.iterdir():
        p.write_bytes(b"\x80\x04garbage, not a pickle" * 10)
    damaged, log = _child(cache, tmp)
    assert damaged["hits"] == 0 and "compiling the numba kernel again" in log
    assert damaged["states"] == first["states"]
    repaired, _ = _child(cache, tmp)
    assert repaired["hits"] == 1 and repaired["states"] == first["states"]

    assert list(tmp.iterdir()) == []  # nothing went to the temporary folder
