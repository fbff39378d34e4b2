"""Synthetic missingness: labels hidden completely at random at a given rate (SPEC §1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molddl.data.loaders import load_higgs, load_tox21
from molddl.data.masking import apply_missingness, mask_labels
from molddl.data.splits import split_dataset


@pytest.fixture(scope="module")
def higgs(data_dir: Path):
    data = load_higgs(data_dir=data_dir)
    assert len(data) == 10984 and not np.isnan(data.y).any()
    return data


@pytest.mark.parametrize("seed", [0, 1, 2024])
def test_rate_04_gives_36_24_24_16_percent(higgs, seed):
    masked = higgs.with_labels(mask_labels(higgs.y, 0.4, seed))
    n = len(masked)
    shares = {k: 100 * v / n for k, v in masked.partition_counts().items()}
    expected = {"D12": 36.0, "D1": 24.0, "D2": 24.0, "D0": 16.0}
    for part, share in expected.items():
        assert abs(shares[part] - share) <= 1.5, (part, shares)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
def test_each_label_is_hidden_at_the_rate(higgs, rate):
    y = mask_labels(higgs.y, rate, seed=11)
    for k in range(2):
        assert abs(np.isnan(y[:, k]).mean() - rate) <= 0.015
    # the two labels are hidden independently: P(both hidden) ≈ rate²
    assert abs(np.isnan(y).all(axis=1).mean() - rate**2) <= 0.015


def test_masking_only_hides_values(higgs):
    y = mask_labels(higgs.y, 0.4, seed=0)
    kept = ~np.isnan(y)
    np.testing.assert_array_equal(y[kept], higgs.y[kept])
    assert not np.isnan(higgs.y).any(), "the input array was modified"


def test_same_seed_same_mask_other_seed_other_mask(higgs):
    a = mask_labels(higgs.y, 0.4, seed=5)
    b = mask_labels(higgs.y, 0.4, seed=5)
    c = mask_labels(higgs.y, 0.4, seed=6)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    assert not np.array_equal(np.isnan(a), np.isnan(c))


def test_already_missing_labels_stay_missing(data_dir):
    tox21 = load_tox21(data_dir=data_dir)
    before = np.isnan(tox21.y)
    y = mask_labels(tox21.y, 0.3, seed=0)
    after = np.isnan(y)
    assert after[before].all()
    # about 30 % of the present labels are newly hidden
    newly = (after & ~before).sum() / (~before).sum()
    assert abs(newly - 0.3) <= 0.02
    np.testing.assert_array_equal(y[~after], tox21.y[~after])


def test_rate_zero_changes_nothing_and_bad_rates_are_rejected(higgs):
    np.testing.assert_array_equal(mask_labels(higgs.y, 0.0, seed=0), higgs.y)
    for rate in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="missing rate"):
            mask_labels(higgs.y, rate, seed=0)


def test_apply_missingness_masks_train_and_val_but_not_test(higgs):
    train, val, test = split_dataset(higgs, "random", (0.8, 0.1, 0.1), seed=0)
    test_y = test.y.copy()
    train_y = train.y.copy()
    m_train, m_val, m_test = apply_missingness(train, val, test, rate=0.4, seed=0)
    # the test part keeps its ground truth, bit for bit
    assert m_test.y.tobytes() == test_y.tobytes()
    assert test.y.tobytes() == test_y.tobytes()
    np.testing.assert_array_equal(m_test.ids, test.ids)
    # train and val are masked at the rate; the original parts are left alone
    for part in (m_train, m_val):
        assert abs(np.isnan(part.y).mean() - 0.4) <= 0.05
    assert train.y.tobytes() == train_y.tobytes()
    np.testing.assert_array_equal(m_train.ids, train.ids)
    np.testing.assert_array_equal(m_train.X, train.X)
    # seeded
    again = apply_missingness(train, val, test, rate=0.4, seed=0)
    np.testing.assert_array_equal(np.isnan(again[0].y), np.isnan(m_train.y))
    np.testing.assert_array_equal(np.isnan(again[1].y), np.isnan(m_val.y))
