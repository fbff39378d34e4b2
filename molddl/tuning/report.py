"""What a study leaves in the output folder: the best config, every trial, a summary and
plots, each written atomically so that a killed run never leaves half a file."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import optuna

from molddl.config import Config
from molddl.io import atomic_path, atomic_write, atomic_write_text
from molddl.tuning.objective import apply_params
from molddl.tuning.study import FINISHED

logger = logging.getLogger(__name__)


def best_config(study: optuna.Study, cfg: Config) -> Config:
    """``cfg`` with the best trial's values: the config ``molddl train`` reruns it with."""
    return apply_params(cfg, study.best_trial.params)


def summary_markdown(study: optuna.Study, metric: str) -> str:
    """Best value and parameters, and how many trials completed, were pruned or failed."""
    states = optuna.trial.TrialState
    count = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}
    lines = [
        f"# Study `{study.study_name}`",
        "",
        "| | |",
        "| --- | --- |",
        f"| metric | `{metric}` ({study.direction.name.lower()}) |",
        f"| trials | {len(study.trials)} |",
        f"| complete | {count[states.COMPLETE]} |",
        f"| pruned | {count[states.PRUNED]} |",
        f"| failed | {count[states.FAIL]} |",
    ]
    unfinished = len(study.trials) - sum(count.values())
    if unfinished:  # still running elsewhere, or left by a worker that was killed
        lines.append(f"| running or interrupted | {unfinished} |")
    if count[states.COMPLETE]:
        best = study.best_trial
        lines += [f"| best trial | {best.number} |", f"| best value | {best.value:.6g} |", ""]
        lines += ["## Best parameters", "", "| parameter | value |", "| --- | --- |"]
        lines += [
            f"| `{k}` | {v:.6g} |" if isinstance(v, float) else f"| `{k}` | {v} |"
            for k, v in best.params.items()
        ]
    return "\n".join(lines) + "\n"


def write_reports(study: optuna.Study, cfg: Config, output_dir: str | Path) -> None:
    """``best_config.yaml``, ``trials.csv``, ``summary.md``, ``history.png`` and
    ``importances.png`` in ``output_dir``, each written atomically."""
    out = Path(output_dir)
    df = study.trials_dataframe()
    atomic_write(out / "trials.csv", lambda fh: df.to_csv(fh, index=False))
    atomic_write_text(out / "summary.md", summary_markdown(study, cfg.tune.metric))
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if n_complete == 0:
        logger.warning("no trial completed: best_config.yaml and the plots are not written")
        return
    atomic_write_text(out / "best_config.yaml", best_config(study, cfg).to_yaml())
    _save_plot(
        optuna.visualization.matplotlib.plot_optimization_history, study, out / "history.png"
    )
    if n_complete < 2:
        logger.info("parameter importances need 2 complete trials: importances.png skipped")
        return
    _save_plot(
        optuna.visualization.matplotlib.plot_param_importances, study, out / "importances.png"
    )


def _save_plot(plot: Callable, study: optuna.Study, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        ax = plot(study)
    fig = ax.figure
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
