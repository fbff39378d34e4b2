"""Training loop behaviour the losses alone do not show."""

from __future__ import annotations

import numpy as np

from molddl.data.synthetic import make_dual_label
from molddl.models.estimator import DualLabelModel

CFG = {
    "model": {"encoder": "mlp", "hidden": 8, "layers": 2, "tower_hidden": 8},
    "device": "cpu",
}


def test_batch_of_unlabelled_samples_does_not_stop_training():
    """A mini-batch made only of D0 members has no loss; training skips it, not crashes."""
    data = make_dual_label(40, n_features=3, missing_rate=0.3, seed=0)
    y = data.y.copy()
    y[:5] = np.nan  # several D0 rows; with batch_size 1 each is its own batch
    train, val = data.with_labels(y).subset(range(30)), data.subset(range(30, 40))
    model = DualLabelModel({**CFG, "train": {"max_epochs": 1, "batch_size": 1}})
    model.fit(train, val)
    assert model.history_["dll"]["epochs"] == 1
