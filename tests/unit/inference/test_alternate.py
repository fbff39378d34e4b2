"""Alternate inference (Algorithm 2) on towers whose fixed points are known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from molddl.config import InferenceConfig
from molddl.data.labels import LabelSpec, label_kind
from molddl.inference.alternate import alternate, direct
from molddl.nn.towers import Tower

BIN = LabelSpec("b", "binary")
REG = LabelSpec("r", "regression")


class _Double(nn.Module):
    """The part of the tower protocol alternate inference uses: a zero label projection, so
    ``step(base, M, state)`` is ``from_parts(hh, state)``."""

    def label_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(1, 2), torch.zeros(2)

    def step(self, base: torch.Tensor, M: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.from_parts(base, state)


class AffineTower(_Double):
    """Regression tower: ``ŷ = hh[:, 0] + hh[:, 1] · y_other`` (per-sample coefficients)."""

    def __init__(self) -> None:
        super().__init__()
        self.out_spec = REG
        self.out_kind = label_kind(REG)
        self.calls: list[int] = []

    def from_parts(self, hh: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        self.calls.append(hh.shape[0])
        return hh[:, :1] + hh[:, 1:2] * state


class ProbTower(_Double):
    """Binary tower whose probability is ``fn(p_other)``; returns the matching logit."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.out_spec, self.fn = BIN, fn
        self.out_kind = label_kind(BIN)

    def from_parts(self, hh: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return torch.logit(self.fn(state).clamp(1e-6, 1 - 1e-6))


def _hh(c: float, a: float, n: int = 1) -> torch.Tensor:
    return torch.tensor([[c, a]]).expand(n, 2).clone()


def test_towers_that_ignore_the_label_converge_in_two_iterations():
    torch.manual_seed(0)
    towers = [Tower(4, BIN, BIN, hidden=8).eval(), Tower(4, BIN, BIN, hidden=8).eval()]
    for t in towers:
        with torch.no_grad():
            t.lin_y.weight.zero_()
    h = torch.randn(5, 4)
    hh = [t.encode_h(h).detach() for t in towers]
    init = [torch.full((5, 1), 0.5), torch.full((5, 1), 0.5)]
    res = alternate(towers, hh, init, InferenceConfig(tol=1e-6))
    assert res.converged.all()
    assert res.iterations.tolist() == [2] * 5
    with torch.no_grad():
        fixed = [torch.sigmoid(towers[k](h, init[1 - k])) for k in range(2)]
    for k in range(2):
        torch.testing.assert_close(res.states[k], fixed[k])
    assert (res.residual < 1e-6).all()


def _fixed_point(c1, a1, c2, a2):
    y1 = (c1 + a1 * c2) / (1 - a1 * a2)
    return y1, c2 + a2 * y1


@pytest.mark.parametrize("method", ["jacobi", "gauss_seidel"])
def test_contraction_reaches_the_known_fixed_point(method):
    c1, a1, c2, a2 = 1.0, 0.6, -0.5, -0.7
    towers = [AffineTower(), AffineTower()]
    init = [torch.zeros(3, 1), torch.zeros(3, 1)]
    res = alternate(towers, [_hh(c1, a1, 3), _hh(c2, a2, 3)], init,
                    InferenceConfig(method=method, tol=1e-7, max_iter=500))  # fmt: skip
    y1, y2 = _fixed_point(c1, a1, c2, a2)
    assert res.converged.all()
    torch.testing.assert_close(res.states[0], torch.full((3, 1), y1), atol=1e-5, rtol=0)
    torch.testing.assert_close(res.states[1], torch.full((3, 1), y2), atol=1e-5, rtol=0)


def test_gauss_seidel_needs_fewer_iterations_than_jacobi():
    hh = [_hh(1.0, 0.8), _hh(-0.5, 0.9)]
    runs = {}
    for method in ("jacobi", "gauss_seidel"):
        init = [torch.zeros(1, 1), torch.zeros(1, 1)]
        res = alternate([AffineTower(), AffineTower()], hh, init,
                        InferenceConfig(method=method, tol=1e-6, max_iter=1000))  # fmt: skip
        assert res.converged.all()
        runs[method] = res
    torch.testing.assert_close(runs["jacobi"].states, runs["gauss_seidel"].states, atol=1e-4,
                               rtol=0)  # fmt: skip
    assert runs["gauss_seidel"].iterations.item() < runs["jacobi"].iterations.item()


def _flip_towers():
    # ŷ1 = g(y2) = y2 (copy), ŷ2 = f(y1) = 1 - y1 (flip): no fixed point is ever reached
    # by the plain iteration from (0.9, 0.9): the states cycle with period 4
    return [ProbTower(lambda p: p), ProbTower(lambda p: 1 - p)]


def test_oscillating_system_stops_at_max_iter_unconverged():
    init = [torch.full((2, 1), 0.9), torch.full((2, 1), 0.9)]
    res = alternate(_flip_towers(), [torch.zeros(2, 1)] * 2, init,
                    InferenceConfig(tol=1e-4, max_iter=7))  # fmt: skip
    assert res.iterations.tolist() == [7, 7]
    assert not res.converged.any()
    assert (res.residual > 0.5).all()
    # after 7 steps of the period-4 cycle (0.9,0.9)→(0.9,0.1)→(0.1,0.1)→(0.1,0.9)→…
    torch.testing.assert_close(res.states[0], torch.full((2, 1), 0.1), atol=1e-5, rtol=0)
    torch.testing.assert_close(res.states[1], torch.full((2, 1), 0.9), atol=1e-5, rtol=0)


def test_damping_makes_the_oscillating_system_converge():
    init = [torch.full((2, 1), 0.9), torch.full((2, 1), 0.9)]
    res = alternate(_flip_towers(), [torch.zeros(2, 1)] * 2, init,
                    InferenceConfig(tol=1e-5, max_iter=200, damping=0.5))  # fmt: skip
    assert res.converged.all()
    assert (res.iterations < 200).all()
    for k in range(2):  # the only fixed point of y1 = y2, y2 = 1 - y1
        torch.testing.assert_close(res.states[k], torch.full((2, 1), 0.5), atol=1e-4, rtol=0)


def test_converged_samples_leave_the_working_set():
    # sample 0 ignores the other label (a = 0), sample 1 is a slow contraction
    hh1 = torch.tensor([[1.0, 0.0], [1.0, 0.9]])
    hh2 = torch.tensor([[2.0, 0.0], [-0.5, 0.9]])
    towers = [AffineTower(), AffineTower()]
    init = [torch.zeros(2, 1), torch.zeros(2, 1)]
    res = alternate(towers, [hh1, hh2], init, InferenceConfig(tol=1e-6, max_iter=1000))
    assert res.converged.all()
    it = res.iterations.tolist()
    assert it[0] == 2 and it[1] > 20
    # sample 0 keeps the state it converged to
    assert res.states[0][0].item() == 1.0 and res.states[1][0].item() == 2.0
    y1, y2 = _fixed_point(1.0, 0.9, -0.5, 0.9)
    assert res.states[0][1].item() == pytest.approx(y1, abs=1e-4)
    assert res.states[1][1].item() == pytest.approx(y2, abs=1e-4)
    # the towers only ran on the unconverged sample after iteration 2
    assert towers[0].calls[:2] == [2, 2] and set(towers[0].calls[2:]) == {1}
    assert len(towers[0].calls) == it[1]


def test_max_iter_of_one_leaves_an_oscillating_system_unconverged():
    init = [torch.full((3, 1), 0.9), torch.full((3, 1), 0.9)]
    res = alternate(_flip_towers(), [torch.zeros(3, 1)] * 2, init, InferenceConfig(max_iter=1))
    assert res.iterations.tolist() == [1, 1, 1] and not res.converged.any()


def test_direct_uses_the_precomputed_h_part():
    torch.manual_seed(0)
    tower = Tower(4, BIN, BIN, hidden=8).eval()
    h, s = torch.randn(3, 4), torch.rand(3, 1)
    with torch.no_grad():
        torch.testing.assert_close(direct(tower, tower.encode_h(h), s), torch.sigmoid(tower(h, s)))


def test_divergence_guard_flags_only_unconverged_runaway_values():
    from molddl.data.labels import label_kind
    from molddl.inference.predict import diverged_samples

    states = [torch.tensor([[0.2], [0.9], [0.5], [0.1]]),  # binary: never flagged
              torch.tensor([[1e5], [0.3], [float("nan")], [1e5]])]  # fmt: skip
    converged = torch.tensor([False, False, False, True])
    flagged = diverged_samples(
        (label_kind(BIN), label_kind(REG)), states, converged, max_abs_z=10.0
    )
    assert flagged.tolist() == [True, False, True, False]


def _bistable_towers():
    # ŷ1 = g(y2), ŷ2 = f(y1), both a steep copy: two stable fixed points, both labels low
    # (L, L) or both high (H, H). Plain Jacobi from a mixed start alternates (H, L) ↔ (L, H)
    # for ever: its two interleaved chains settle on different fixed points.
    def steep(p):
        return torch.sigmoid(10 * (p - 0.5))

    return [ProbTower(steep), ProbTower(steep)]


def _bistable_fixed_points() -> tuple[float, float]:
    low, high = 0.0, 1.0
    for _ in range(200):
        low, high = (torch.sigmoid(10 * (torch.tensor([low, high]) - 0.5))).tolist()
    return low, high


def _bistable(cycles: str, max_iter: int = 1000, init=(0.9, 0.3)):
    start = [torch.full((1, 1), init[0]), torch.full((1, 1), init[1])]
    cfg = InferenceConfig(tol=1e-4, max_iter=max_iter, cycles=cycles)
    return alternate(_bistable_towers(), [torch.zeros(1, 1)] * 2, start, cfg)


@pytest.mark.parametrize("max_iter", [1000, 999])
def test_a_period_two_cycle_stops_early_with_the_state_of_max_iter(max_iter):
    full, stop = _bistable("continue", max_iter), _bistable("stop", max_iter)
    assert full.iterations.item() == max_iter and not full.cycle.any()
    assert stop.cycle.all() and not stop.converged.any()
    assert stop.iterations.item() < 50
    for k in range(2):
        torch.testing.assert_close(stop.states[k], full.states[k], atol=1e-4, rtol=0)
    # the plain iteration pairs label 1 of one fixed point with label 2 of the other
    assert abs(full.states[0].item() - full.states[1].item()) > 0.9


@pytest.mark.parametrize(("init", "expected"), [((0.9, 0.3), 1), ((0.7, 0.1), 0)])
def test_fixed_point_mode_returns_the_consistent_fixed_point_nearest_the_start(init, expected):
    res = _bistable("fixed_point", init=init)
    assert res.cycle.all() and not res.converged.any()
    target = _bistable_fixed_points()[expected]
    for k in range(2):
        assert res.states[k].item() == pytest.approx(target, abs=1e-4)


def test_fixed_point_mode_falls_back_to_stop_under_gauss_seidel():
    # Gauss–Seidel on the flip pair alternates (0.1, 0.1) ↔ (0.9, 0.9); its states do not pair
    # up as fixed points, so the output stays the loop's state at max_iter
    runs = {}
    for cycles in ("continue", "stop", "fixed_point"):
        start = [torch.full((1, 1), 0.9), torch.full((1, 1), 0.9)]
        cfg = InferenceConfig(method="gauss_seidel", tol=1e-4, max_iter=301, cycles=cycles)
        runs[cycles] = alternate(_flip_towers(), [torch.zeros(1, 1)] * 2, start, cfg)
    assert runs["stop"].cycle.all() and runs["stop"].iterations.item() < 10
    for k in range(2):
        torch.testing.assert_close(runs["stop"].states[k], runs["continue"].states[k])
        assert torch.equal(runs["stop"].states[k], runs["fixed_point"].states[k])


def test_a_slow_damped_oscillation_still_converges_and_is_not_taken_for_a_cycle():
    # Jacobi's iteration matrix has eigenvalues ±0.95: the -0.95 mode alternates in sign
    # while it decays, so the lag-2 change is small long before the lag-1 change is
    c1, a1, c2, a2 = 1.0, 0.95, -0.5, 0.95
    init = [torch.zeros(1, 1), torch.zeros(1, 1)]
    res = alternate([AffineTower(), AffineTower()], [_hh(c1, a1), _hh(c2, a2)], init,
                    InferenceConfig(tol=1e-6, max_iter=5000))  # fmt: skip
    assert res.converged.all() and not res.cycle.any()
    y1, y2 = _fixed_point(c1, a1, c2, a2)
    assert res.states[0].item() == pytest.approx(y1, rel=1e-3)
    assert res.states[1].item() == pytest.approx(y2, rel=1e-3)
