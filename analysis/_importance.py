"""Parameter importance over the finished trials, by Optuna's own evaluator."""

from __future__ import annotations

from typing import Any, NamedTuple

from analysis._common import escape
from analysis._reader import Experiment
from trainable.experiment import COMPLETED, EARLY

FINISHED = (COMPLETED, *EARLY)
# Below this, PED-ANOVA's best 10 % are one or two trials and its ranking follows their noise (a
# 4-trial demo ranked d_dropout first, where the learning rate and the projection discriminator
# made the difference): the dashboard shows what separated the working trials instead.
MIN_TRIALS = 20


class ImportanceInfo(NamedTuple):
    params: list[str]  # most important first
    importances: list[float]  # normalised to sum to 1
    trials_used: int
    method: str
    note: str  # why there is no figure, when there is none


def get_importance_info(experiment: Experiment) -> ImportanceInfo:
    """PED-ANOVA (Optuna's evaluator that needs no scikit-learn): how much each parameter's
    distribution among the best trials differs from its distribution among all finished ones.
    Finished = completed, cut by ASHA, or stopped for collapse; each with its last score."""
    method = "Optuna PedAnovaImportanceEvaluator"
    search = experiment.search
    if not search:
        return ImportanceInfo([], [], 0, method, "needs a study (a single trial has nothing to compare)")
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    distributions = {key: domain.distribution() for key, domain in search.items()}
    trials = []
    for trial in experiment.trials:
        if trial.stop_reason not in FINISHED or trial.score is None:
            continue
        params = {key: trial.params.get(key) for key in search}
        if not all(search[key].contains(value) for key, value in params.items()):
            continue  # a value outside the study file's space (an edited params.json): left out
        trials.append(optuna.trial.create_trial(params=params, distributions=distributions, value=trial.score))
    if len(trials) < MIN_TRIALS:
        return ImportanceInfo([], [], len(trials), method,
                              f"needs at least {MIN_TRIALS} finished trials with a score, has {len(trials)}: see what "
                              "separated the trials above")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    study.add_trials(trials)
    # The best 10 % of trials, but never fewer than two of them, against all finished ones.
    quantile = min(0.5, max(0.1, 2 / len(trials)))
    importances = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(target_quantile=quantile))
    ordered = sorted(importances.items(), key=lambda item: -item[1])
    return ImportanceInfo([k for k, _ in ordered], [float(v) for _, v in ordered], len(trials),
                          f"{method} (best {quantile:.0%} vs all)", "")


def plot_importance(info: ImportanceInfo) -> dict[str, Any]:
    if not info.params:
        return {"data": [], "layout": {"title": {"text": "Parameter importance"},
                                       "annotations": [{"text": escape(info.note), "showarrow": False,
                                                        "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}],
                                       "xaxis": {"visible": False}, "yaxis": {"visible": False}}}
    trace = {"type": "bar", "orientation": "h", "x": info.importances[::-1],
             "y": [escape(p) for p in info.params[::-1]], "marker": {"color": "#1f77b4"},
             "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}
    return {"data": [trace], "layout": {
        "title": {"text": f"Parameter importance over {info.trials_used} finished trials"},
        "xaxis": {"title": {"text": escape(info.method)}}, "margin": {"l": 140, "t": 40},
        "height": 120 + 28 * len(info.params)}}
