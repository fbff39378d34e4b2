"""The benchmark methods (paper §IV, SPEC §5), in the paper's order: the one list that the
config's ``methods``, the experiments and ``molddl benchmark --methods`` take their names from.

Only names and descriptions are defined here, so that checking a config does not import
torch; a method's estimator class is imported when it is first asked for.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Method:
    """One benchmark method.

    Attributes
    ----------
    name
        Its name in configs, on the command line and in result tables, e.g. ``"DLL"``.
    description
        One line saying what it trains.
    mode
        The :class:`~molddl.models.estimator.DualLabelModel` prediction mode that serves it
        (DLL), or ``None`` for a baseline with its own class in
        :data:`molddl.models.baselines.BASELINES`.
    """

    name: str
    description: str
    mode: str | None = None

    @property
    def estimator(self) -> type:
        """The class to fit for it, imported on first use."""
        if self.mode is None:
            from molddl.models.baselines import BASELINES

            return BASELINES[self.name]
        from molddl.models.estimator import DualLabelModel

        return DualLabelModel


#: every method by name, in the paper's order
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("DLL", "Dual-Label Learning: (x, y2) → y1 and (x, y1) → y2, iterated", "dll"),
        Method("MT", "masked multi-task model x → (y1, y2) (the network of DLL's marginal model)"),
        Method("ID", "independent models x → y1 and x → y2, each on the samples with that label"),
        Method("COL", "one model x → (y1, y2) on the samples with both labels only"),
        Method("SSL", "self-training: COL imputes the half-labelled samples, then retrains on all"),
        Method("LS", "label stacking: x → y1, impute a missing y1, then (x, y1) → y2"),
        Method("DSML", "label exchange: x → y1, (x, ŷ1) → y2, (x, ŷ2) → y1"),
    )
}

#: the method names, in the paper's order
NAMES: tuple[str, ...] = tuple(METHODS)
