"""The study file's scheduler = "pbt": validation, the population, and the scheduler's choices."""

import dataclasses
from types import SimpleNamespace

import pytest
from ray.tune.execution.tune_controller import TuneController
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from study._search import initial_population, make_searcher
from study._stopping import KeepInSpace, StudyPBT, make_scheduler
from study.spec import StudySpec, load_spec
from trainable.config import TrainConfig
from trainable.errors import ConfigError

PBT = '[study]\nscheduler = "pbt"\nsamples = 6\n'


def write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ('[study]\nscheduler = "hyperband"\n', "[study].scheduler: expected one of asha, pbt, pb2, got 'hyperband'"),
    (PBT + 'mutate = ["d_filters"]\n', "[study].mutate: d_filters cannot change in the middle of a training"),
    (PBT + 'mutate = ["latent_size"]\n', "[study].mutate: latent_size cannot change in the middle of a training"),
    (PBT + 'mutate = ["label_smoothing"]\n[search]\ng_lr = {low = 1e-4, high = 1e-3}\nlatent_size = [100]\n'
           'd_filters = ["32,64,128", "16,32,64"]\nd_dropout = [0.0, 0.3]\nfreeze_after = ["off", 50000]\n'
           'freeze_accuracy = ["off", 0.95]\n', "[study].mutate: label_smoothing is not searched"),
    (PBT + 'mutate = "g_lr"\n', '[study].mutate: expected a list of field names like ["g_lr", "d_lr"]'),
    ('[study]\nperturbation_interval = 2\n', '[study].perturbation_interval: a PBT setting; it needs scheduler = "pbt"'),
    (PBT + 'perturbation_interval = 4\n', "[study].perturbation_interval: 4 evaluations, but a trial makes 4"),
    (PBT + "perturbation_interval = 0\n", "[study].perturbation_interval: 0 is below the least allowed, 1"),
    (PBT + "quantile_fraction = 0.6\n", "[study].quantile_fraction: 0.6 must be above 0 and at most 0.5"),
    (PBT + "multi_objective = true\n", "[study].multi_objective: pbt ranks a population by one score"),
    (PBT + "lengthen = true\n", "[study].lengthen: pbt trains one population of one length; set lengthen = false"),
    ('[study]\nscheduler = "pbt"\nbaselines = []\n[search]\nlatent_size = [32, 100]\n',
     "[study].scheduler pbt: no searched field may change mid-training"),
    ('[study]\nscheduler = "pb2"\n', "[study].scheduler pb2 mutates ranges only; [search].g_beta2 is a choice list"),
    ('[study]\nscheduler = "pb2"\nperturbation_interval = 1\nmutate = ["g_lr"]\n[search]\ng_lr = {low = 1e-4, high = 1e-3}\n',
     "[study].perturbation_interval: pb2 needs at least 2"),
])
def test_bad_pbt_settings_are_refused_with_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_spec(write(tmp_path, text))
    assert message in str(error.value)


def test_pbt_mutates_the_searched_mutable_fields_and_survives_study_json(tmp_path):
    spec = load_spec(write(tmp_path, PBT))
    assert spec.population_based and spec.early_stopping  # the collapse stoppers stay on
    assert "g_lr" in spec.mutations and "d_dropout" in spec.mutations
    assert "latent_size" not in spec.mutations and "d_filters" not in spec.mutations
    chosen = load_spec(write(tmp_path, PBT + 'mutate = ["g_lr", "d_lr"]\nperturbation_interval = 1\n'))
    assert list(chosen.mutations) == ["g_lr", "d_lr"]
    again = StudySpec.from_dict(chosen.to_dict())
    assert again == chosen and again.mutate == ("g_lr", "d_lr")
    assert load_spec().scheduler == "asha" and not load_spec().mutations


def test_the_population_is_the_baselines_then_seeded_draws(tmp_path):
    spec = load_spec(write(tmp_path, PBT))
    population = initial_population(spec)
    assert len(population) == 6 and population == initial_population(spec)  # seeded
    for point, name in zip(population, spec.baselines):
        assert {key: point[key] for key in spec.search} == spec.baseline_points()[spec.baselines.index(name)]
    for point in population:  # whole configs, in the study's form
        TrainConfig.from_dict(point)
        assert point["iterations"] == spec.base_config().iterations
    other = initial_population(dataclasses.replace(spec, seed=1))
    assert other[:len(spec.baselines)] == population[:len(spec.baselines)] and other != population
    search_alg, param_space = make_searcher(spec, tmp_path)
    assert type(search_alg).__name__ == "BasicVariantGenerator" and set(param_space) == set(population[0])


def test_no_two_members_start_alike_unless_the_space_is_smaller_than_the_population(tmp_path, capsys):
    # 2 latent sizes x 2 dropouts: 4 configurations, V0 and V1 among them.
    text = ('[study]\nscheduler = "pbt"\nbaselines = ["V0", "V1"]\nsamples = {}\n[search]\n'
            'latent_size = [80, 100]\nd_dropout = [0.0, 0.3]\n')
    searched = lambda population: [(point["latent_size"], point["d_dropout"]) for point in population]
    four = searched(initial_population(load_spec(write(tmp_path, text.format(4)))))
    assert four[:2] == [(100, 0.0), (80, 0.3)] and len(set(four)) == 4
    assert "outnumbers" not in capsys.readouterr().err
    six = searched(initial_population(load_spec(write(tmp_path, text.format(6)))))
    assert len(six) == 6 and set(six) == set(four)
    assert "the population of 6 outnumbers the 4 distinct configurations" in capsys.readouterr().err


def test_explore_keeps_every_config_in_the_study_space(tmp_path):
    spec = load_spec(write(tmp_path, PBT))
    keep = KeepInSpace(spec.mutations)
    low, high = spec.search["g_lr"].low, spec.search["g_lr"].high  # the default space's learning rates
    config = {**initial_population(spec)[0], "g_lr": high * 1.2, "d_lr": low * 0.8, "d_dropout": 0.5 * 1.2}
    kept = keep(dict(config))
    assert (kept["g_lr"], kept["d_lr"], kept["d_dropout"]) == (high, low, 0.5)
    assert {key: value for key, value in kept.items() if key not in ("g_lr", "d_lr", "d_dropout")} == {
        key: value for key, value in config.items() if key not in ("g_lr", "d_lr", "d_dropout")}


class FakeTrial:
    """What PBT's exploit step reads of a paused trial (hashable, as Ray's Trial)."""

    def __init__(self, config):
        self.config, self.status, self.checkpoint = config, "PAUSED", "ckpt"
        self.temporary_state = SimpleNamespace(saving_to=None)


def test_a_baseline_is_never_exploited_but_others_may_take_its_weights(tmp_path):
    spec = load_spec(write(tmp_path, PBT))
    scheduler = make_scheduler(spec, tmp_path)
    assert isinstance(scheduler, StudyPBT) and scheduler._synch
    v0, searched = FakeTrial(initial_population(spec)[0]), FakeTrial(initial_population(spec)[-1])
    exploited = []
    scheduler._exploit = lambda controller, trial, clone: exploited.append((trial, clone))
    scheduler._trial_state = {t: SimpleNamespace(last_checkpoint="ckpt", last_result={}) for t in (v0, searched)}
    # V0 at the bottom, the searched trial at the top: V0 keeps its weights and config.
    scheduler._checkpoint_or_exploit(v0, None, upper_quantile=[searched], lower_quantile=[v0])
    assert exploited == []
    # The other way round (the top quantile checkpointed first), the searched trial takes V0's.
    scheduler._checkpoint_or_exploit(v0, None, upper_quantile=[v0], lower_quantile=[searched])
    scheduler._checkpoint_or_exploit(searched, None, upper_quantile=[v0], lower_quantile=[searched])
    assert exploited == [(searched, v0)]
    # A trial's last report is never a perturbation point.
    assert scheduler.on_trial_result(None, searched, {"training_iteration": spec.evaluations, "score": 1.0}) \
        == TrialScheduler.CONTINUE


class PausingController:
    """Tune's own pause and stop code (TuneController's methods), on a controller whose actors are
    stand-ins: what PBT's exploit calls when it takes a running trial's weights away."""

    pause_trial = TuneController.pause_trial
    _schedule_trial_pause = TuneController._schedule_trial_pause
    _schedule_trial_stop = TuneController._schedule_trial_stop
    search_alg = None

    def __init__(self, *trials):
        self._cached_trial_decisions = {}
        self._trial_to_actor = {trial: f"actor of {trial.trial_id}" for trial in trials}
        self._actor_manager = SimpleNamespace(clear_actor_task_futures=lambda tracked_actor: None)

    def _set_trial_status(self, trial, status):
        trial.set_status(status)

    def _mark_trial_to_checkpoint(self, trial):
        pass

    def _maybe_cache_trial_actor(self, trial):
        return True  # kept for reuse, as with reuse_actors=True


@pytest.mark.parametrize("saving", [True, False])
def test_a_trial_exploited_while_its_pause_save_is_in_flight_is_paused_not_stopped(tmp_path, saving):
    """Synchronous PBT paused this trial at the perturbation point (its save still in flight, so it is
    RUNNING), then the last trial's report made it take another's weights. Ray caches a STOP there
    that ends the trial after its next report (ray-project/ray#57906); the study's PBT must not."""
    spec = load_spec(write(tmp_path, PBT + '[search]\ng_lr = {low = 1e-4, high = 1e-3}\n'))
    scheduler = make_scheduler(spec, tmp_path)
    scheduler._log_config = False  # Ray's policy files need a real experiment folder
    population = initial_population(spec)
    trial, donor = (Trial("cgan_trainable", config=config, stub=True) for config in (population[-1], population[-2]))
    controller = PausingController(trial, donor)
    for each in (trial, donor):
        scheduler.on_trial_add(controller, each)
        each.set_status(Trial.RUNNING)
    for each, score in ((trial, 9.0), (donor, 1.0)):
        state = scheduler._trial_state[each]
        state.last_score, state.last_train_time, state.last_result = score, 2, {"training_iteration": 2, "score": score}
    scheduler._trial_state[donor].last_checkpoint = "donor's checkpoint"
    if saving:  # as Tune's pause_trial(should_checkpoint=True) leaves it
        controller._cached_trial_decisions[trial.trial_id] = TrialScheduler.PAUSE
        trial.temporary_state.saving_to = "the pause's save"
    scheduler._exploit(controller, trial, donor)
    assert trial.status == Trial.PAUSED
    assert controller._cached_trial_decisions.get(trial.trial_id) is None  # nothing waits to end it
    assert not trial.is_saving
    restored = trial.run_metadata.checkpoint_manager._latest_checkpoint_result
    assert restored.checkpoint == "donor's checkpoint"  # it goes on from the donor's weights


def test_a_resumed_population_meets_at_one_time_before_it_is_perturbed(tmp_path):
    """A killed driver leaves its trials at different evaluations (3 and 4 here, interval 2). The
    resumed scheduler must let them all reach 6 before any takes another's weights: Ray's own
    perturbed them where they were, and a trial behind skipped reports by taking weights ahead."""
    spec = load_spec(write(tmp_path, PBT + 'perturbation_interval = 2\n[fixed]\niterations = 1600\neval_every = 200\n'))
    assert spec.evaluations == 8
    scheduler = make_scheduler(spec, tmp_path)
    population = initial_population(spec)
    behind, ahead, done, fresh = (Trial("cgan_trainable", config=config, stub=True) for config in population[:4])
    for trial, reached, status in ((behind, 3, Trial.PAUSED), (ahead, 4, Trial.PAUSED), (done, 8, Trial.TERMINATED)):
        trial.run_metadata.last_result = {"training_iteration": reached, "score": 1.0}
        trial.set_status(status)
    controller = SimpleNamespace(search_alg=None)  # no live-trial queries: nothing may be perturbed yet
    for trial in (behind, ahead, done, fresh):
        scheduler.on_trial_add(controller, trial)
    assert scheduler._next_perturbation_sync == 6  # past the furthest unfinished trial, on an interval
    assert scheduler._trial_state[behind].last_train_time == 3 and scheduler._trial_state[fresh].last_train_time == 0
    for trial, time in ((behind, 4), (behind, 5), (ahead, 5)):  # catching up, Ray's rule would perturb at 4
        assert scheduler.on_trial_result(controller, trial, {"training_iteration": time, "score": 1.0}) \
            == TrialScheduler.CONTINUE
    # A study that was not resumed keeps Ray's schedule: the first perturbation at the first interval.
    assert make_scheduler(spec, tmp_path)._next_perturbation_sync == 2


def test_schedule_replay_refusals_are_one_line(run_cli, tmp_path):
    import json

    from trainable.experiment import trial_params

    code, _, err = run_cli("trial", "--schedule")
    assert code == 1 and "--schedule needs --from" in err and "Traceback" not in err
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "params.json").write_text(json.dumps(trial_params(TrainConfig())))
    code, _, err = run_cli("trial", "--from", folder, "--schedule", "--out", tmp_path / "out")
    assert code == 1 and "plain: no schedule recorded" in err and not (tmp_path / "out").exists()
    code, _, err = run_cli("analyze", "schedule", folder, "--out", tmp_path / "policy.txt")
    assert code == 1 and "plain: no schedule recorded" in err and not (tmp_path / "policy.txt").exists()
