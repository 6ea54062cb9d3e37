"""Why trials end: a ledger on disk, the collapse stopper, and an ASHA that records its stops;
and the study's scheduler: that ASHA, or Population Based Training.

Every driver-side component (stopper, scheduler, searcher, callback) reads and writes the same
JSON-lines ledger in the experiment folder, so after a killed driver is resumed they still
agree on why each trial ended.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ray.tune import Stopper
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2  # its GP's packages (GPy, scikit-learn) are imported only when it runs

from study.spec import StudySpec
from trainable.config import TrainConfig
from trainable.experiment import (ASHA, COMPLETED, LEDGER_FILE, NONE, SCORE, STOP_REASON, VERDICT, VERDICT_EVIDENCE,
                                  append_whole, matches_point, read_json_lines)
from trainable.space import Domain, Range


class StopLedger:
    def __init__(self, experiment_dir: str | Path) -> None:
        self.path = Path(experiment_dir) / LEDGER_FILE

    def entries(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        for entry in read_json_lines(self.path):
            entries.setdefault(entry["trial_id"], entry)  # the first decision stands
        return entries

    def get(self, trial_id: str) -> dict[str, Any] | None:
        return self.entries().get(trial_id)

    def record(self, trial_id: str, reason: str, evidence: str = "", iteration: int | None = None) -> None:
        if self.get(trial_id) is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_whole(self.path, (json.dumps({"trial_id": trial_id, STOP_REASON: reason, "evidence": evidence,
                                             "iteration": iteration}) + "\n").encode())


class CollapseStopper(Stopper):
    """Ends a trial on mode or loss collapse.

    The trainable's loop already judged each report with the trainer's own verdict function
    (over the trial's history, restored with its checkpoint), and the row carries that
    verdict: the stopper acts on it, so a trial ends for the same reason wherever it runs.
    """

    def __init__(self, experiment_dir: str | Path) -> None:
        self.ledger = StopLedger(experiment_dir)

    def __call__(self, trial_id: str, result: dict) -> bool:
        verdict = result.get(VERDICT, NONE)
        if verdict == NONE:
            return False
        self.ledger.record(trial_id, verdict, result.get(VERDICT_EVIDENCE, ""), result["iteration"])
        return True

    def stop_all(self) -> bool:
        return False


class RecordingASHA(ASHAScheduler):
    """ASHA that writes each of its stop decisions into the ledger. The baselines' points (the
    paper's V0/V1/V2, the reference recipe) are never stopped: they are the yardstick every trial
    is compared with at the same budget. Their results still set ASHA's cut-offs."""

    def __init__(self, experiment_dir: str | Path, *, protected: tuple[dict[str, Any], ...] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = StopLedger(experiment_dir)
        self.protected = protected

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and any(matches_point(trial.config, point) for point in self.protected):
            return TrialScheduler.CONTINUE
        # (a trial the study lengthened has reports past max_t: ASHA's last rung may lie at max_t)
        reports = _evaluations(trial.config) or self._max_t
        finished = result.get(STOP_REASON) == COMPLETED or result.get("training_iteration", 0) >= reports
        if decision == TrialScheduler.STOP and not finished:
            self.ledger.record(trial.trial_id, ASHA, f"below the ASHA cut at training_iteration "
                                                     f"{result.get('training_iteration')} (score {result.get('score'):.4g})",
                               result.get("iteration"))
        return decision


def _evaluations(config: dict[str, Any]) -> int | None:
    """The reports of a trial with this config that runs to its end; None where it does not say."""
    if not {"iterations", "eval_every"} <= config.keys():
        return None
    return TrainConfig.from_dict({key: config[key] for key in ("iterations", "eval_every")}).evaluations


class _SparesBaselines:
    """A PBT that never exploits (replaces the weights and config of) a baseline's trial: the
    paper's points and the reference recipe run to their end as themselves. Other trials may
    still take a baseline's weights and config when it ranks at the top."""

    protected: tuple[dict[str, Any], ...] = ()
    evaluations: int = 0  # a trial's reports when it runs to its end

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        # A trial's last report ends it: PBT would otherwise give it a new config there that it never
        # trains with (and Ray would write that config into its params.json).
        if result.get(STOP_REASON) == COMPLETED or result.get("training_iteration", 0) >= self.evaluations:
            return TrialScheduler.CONTINUE
        # Behind the population's next perturbation time a trial trains on. In lockstep this is Ray's
        # own rule (less than an interval since the last perturbation); it matters for a resumed
        # study's trials catching up (on_trial_add), which Ray would otherwise perturb where they are.
        if self._synch and result.get(self._time_attr, 0) < self._next_perturbation_sync:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_add(self, tune_controller, trial) -> None:
        # A resumed study's trials come back at the evaluations they had reached, which differ when
        # the driver was killed mid-round, while the restored scheduler starts over at the first
        # perturbation time. Ray's synchronous PBT then perturbed the population with its trials at
        # different times, a trial behind taking the weights of one ahead and skipping its reports
        # (seen: 2 of 16 killed-and-resumed studies in the e2e test). The next perturbation is set
        # to the first time past every unfinished trial's, so all meet there first.
        super().on_trial_add(tune_controller, trial)
        reached = (trial.last_result or {}).get(self._time_attr)
        if self._synch and isinstance(reached, int) and reached > 0 and not trial.is_finished():
            state = self._trial_state[trial]
            state.last_train_time = state.last_perturbation_time = reached
            meet = (reached // self._perturbation_interval + 1) * self._perturbation_interval
            self._next_perturbation_sync = max(self._next_perturbation_sync, meet)

    def choose_trial_to_run(self, tune_controller):
        # Ray's synchronous PBT runs a paused trial only while it is behind the next perturbation
        # time. A resumed study's scheduler starts over at the first perturbation time, its trials
        # far past it: after they meet and perturb, the next time is set to the time they are at
        # (max(first + interval, latest)), so none is behind it and all stay PAUSED forever
        # (measured: a PBT study resumed after its driver was killed at iteration 80 of 160 hung
        # there). When no trial runs and every waiting one is at or past it, move it on.
        from ray.tune.experiment import Trial

        chosen = super().choose_trial_to_run(tune_controller)
        if chosen is not None or not self._synch:
            return chosen
        trials = tune_controller.get_trials()
        waiting = [t for t in trials if t.status in (Trial.PENDING, Trial.PAUSED)]
        if waiting and not any(t.status == Trial.RUNNING for t in trials) and all(
                self._trial_state[t].last_train_time >= self._next_perturbation_sync for t in waiting):
            self._next_perturbation_sync = (max(self._trial_state[t].last_train_time for t in waiting)
                                            + self._perturbation_interval)
            chosen = super().choose_trial_to_run(tune_controller)
        return chosen

    def _exploit(self, tune_controller, trial, trial_to_clone):
        # Ray's bug (ray-project/ray#57906, fix proposed in PR #61448): a trial PBT paused at the
        # perturbation point is still RUNNING while its pause-save is in flight. When the last trial's
        # report then perturbs the population and this one takes another's weights, Tune's stop sees
        # it "saving" and caches a STOP that nothing clears. The trial restarts from the clone, makes
        # one report, and that report's checkpoint save pops the STOP: it ends TERMINATED mid-training
        # (seen: 1 of 6 PB2 studies, a trial ended at iteration 60 of 120), or the population waits for
        # it forever. The save is Tune's to drop anyway (its weights are replaced by the clone's):
        # forget it first, so no STOP is cached.
        from ray.tune.experiment import Trial

        if trial.status == Trial.RUNNING and trial.is_saving:
            trial.temporary_state.saving_to = None
        super()._exploit(tune_controller, trial, trial_to_clone)

    def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
        if any(matches_point(trial.config, point) for point in self.protected):
            lower_quantile = [other for other in lower_quantile if other is not trial]
        return super()._checkpoint_or_exploit(trial, tune_controller, upper_quantile, lower_quantile)


class StudyPBT(_SparesBaselines, PopulationBasedTraining):
    def __init__(self, *, protected: tuple[dict[str, Any], ...] = (), evaluations: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.protected, self.evaluations = protected, evaluations


class StudyPB2(_SparesBaselines, PB2):
    def __init__(self, *, protected: tuple[dict[str, Any], ...] = (), evaluations: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.protected, self.evaluations = protected, evaluations


class KeepInSpace:
    """PBT's explore step, finished: a range perturbed by x0.8 / x1.2 is put back within the study's
    [search] bounds (and an integer field rounded), so every config a trial takes stays in the
    study's space: valid, and a point the Optuna store's distributions hold. A class, not a
    closure: Tune pickles the scheduler with the experiment's state."""

    def __init__(self, mutations: dict[str, Domain]) -> None:
        self.ranges = {key: domain for key, domain in mutations.items() if isinstance(domain, Range)}

    def __call__(self, config: dict) -> dict:
        for key, domain in self.ranges.items():
            value = min(max(config[key], domain.low), domain.high)
            config[key] = int(round(value)) if domain.integer else float(value)
        return config


def _mutation(domain: Domain):
    """A [search] domain in the form PBT mutates it: a choice list, or Tune's sampling domain."""
    from ray import tune

    if not isinstance(domain, Range):
        return list(domain.drawn)
    if domain.integer:
        return tune.randint(int(domain.low), int(domain.high) + 1)
    return (tune.loguniform if domain.log else tune.uniform)(*domain.drawn)


def make_pbt(spec: StudySpec) -> PopulationBasedTraining:
    """Ray's PBT (or PB2) over the evaluations, synchronous: every live trial reaches the same
    evaluation before the bottom quantile takes the top's weights and a perturbed config, so each
    exploit happens at one iteration for all and no trial restarts from a checkpoint behind it."""
    # Ray's PBT draws its exploits and mutations from Python's global random: seed it, so a study
    # repeats its choices (the order results arrive in can still differ).
    random.seed(spec.seed)
    common = dict(time_attr="training_iteration", metric=SCORE, mode="min",
                  perturbation_interval=spec.perturbation_interval, quantile_fraction=spec.quantile_fraction,
                  synch=True, custom_explore_fn=KeepInSpace(spec.mutations), evaluations=spec.evaluations)
    protected = tuple(spec.baseline_points())
    if spec.scheduler == "pb2":
        return StudyPB2(protected=protected, hyperparam_bounds={key: list(domain.drawn)
                                                                for key, domain in spec.mutations.items()}, **common)
    return StudyPBT(protected=protected, hyperparam_mutations={key: _mutation(domain)
                                                               for key, domain in spec.mutations.items()},
                    resample_probability=spec.resample_probability, **common)


def make_scheduler(spec: StudySpec, experiment_dir: str | Path) -> TrialScheduler:
    """ASHA over the evaluations (``training_iteration``), PBT, or no early stopping at all."""
    if spec.population_based:
        return make_pbt(spec)
    if not spec.early_stopping:
        return FIFOScheduler()
    evaluations = spec.evaluations
    return RecordingASHA(experiment_dir, protected=tuple(spec.baseline_points()),
                         time_attr="training_iteration", metric=SCORE, mode="min",
                         max_t=evaluations, grace_period=min(spec.grace_period, evaluations),
                         reduction_factor=spec.reduction_factor,
                         # each trial ends at its own length (a lengthened one after max_t: StudySearcher.length)
                         stop_last_trials=False)


def make_stopper(spec: StudySpec, experiment_dir: str | Path) -> Stopper | None:
    return CollapseStopper(experiment_dir) if spec.early_stopping else None
