from ray.tune.schedulers import FIFOScheduler

from study._stopping import CollapseStopper, RecordingASHA, StopLedger, make_scheduler, make_stopper
from study.spec import load_spec
from trainable.experiment import LOSS_COLLAPSE, MODE_COLLAPSE, NONE


def test_collapse_stopper_acts_on_the_verdict_the_report_carries(tmp_path):
    stopper = CollapseStopper(tmp_path)
    assert not stopper("a", {"iteration": 100, "verdict": NONE})
    assert not stopper("a", {"iteration": 200})  # a row without a verdict (none judged yet)
    assert stopper("a", {"iteration": 300, "verdict": MODE_COLLAPSE, "verdict_evidence": "faces alike"})
    assert stopper("a", {"iteration": 400, "verdict": LOSS_COLLAPSE, "verdict_evidence": "D wins"})
    entry = StopLedger(tmp_path).get("a")
    # the first decision stands
    assert entry == {"trial_id": "a", "stop_reason": MODE_COLLAPSE, "evidence": "faces alike", "iteration": 300}


def test_ledger_skips_a_line_cut_by_a_kill(tmp_path):
    ledger = StopLedger(tmp_path)
    ledger.record("a", "asha", "cut")
    with open(ledger.path, "a") as handle:
        handle.write('{"trial_id": "b", "stop_re')
    assert set(ledger.entries()) == {"a"}


def test_without_early_stopping_nothing_stops_a_trial(tmp_path):
    spec = load_spec(early_stopping=False)
    assert isinstance(make_scheduler(spec, tmp_path), FIFOScheduler) and make_stopper(spec, tmp_path) is None
    spec = load_spec()
    asha = make_scheduler(spec, tmp_path)
    assert isinstance(asha, RecordingASHA) and asha._max_t == spec.evaluations == 4


class _Trial:
    def __init__(self, trial_id: str, config: dict) -> None:
        self.trial_id, self.config = trial_id, config


def test_asha_never_stops_a_baseline_but_counts_its_score(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from trainable.experiment import SCORE

    asha = RecordingASHA(tmp_path, protected=({"latent_size": 100, "d_filters": "32,64,128"},),
                         time_attr="training_iteration", metric=SCORE, mode="min", max_t=4, grace_period=1,
                         reduction_factor=2)
    good, v0, bad = (_Trial("good", {"latent_size": 32, "d_filters": "16,32,64"}),
                     _Trial("v0", {"latent_size": 100, "d_filters": "32,64,128"}),
                     _Trial("bad", {"latent_size": 64, "d_filters": "16,32,64"}))
    for trial in (good, v0, bad):
        asha.on_trial_add(None, trial)

    def report(trial, score):
        return asha.on_trial_result(None, trial, {"training_iteration": 1, SCORE: score, "iteration": 100,
                                                  "score": score})

    assert report(good, 1.0) == TrialScheduler.CONTINUE
    assert report(v0, 9.0) == TrialScheduler.CONTINUE  # below the cut, but the paper's V0 runs to its end
    assert report(bad, 8.0) == TrialScheduler.STOP  # a searched trial below the cut still stops
    assert set(StopLedger(tmp_path).entries()) == {"bad"}


def test_asha_lets_a_lengthened_trial_run_past_the_fixed_length_and_still_cuts_at_its_rungs(tmp_path):
    """The study's ASHA rungs lie at the fixed length's evaluations; a trial the study lengthened
    (StudySearcher.length) reports past them and ends at its own length, not at ASHA's max_t."""
    from ray.tune.schedulers import TrialScheduler

    from trainable.experiment import SCORE

    asha = make_scheduler(load_spec(baselines=()), tmp_path)
    good, long, bad = _Trial("good", {}), _Trial("long", {"iterations": 2400}), _Trial("bad", {})
    for trial in (good, long, bad):
        asha.on_trial_add(None, trial)

    def report(trial, step, score):
        return asha.on_trial_result(None, trial, {"training_iteration": step, SCORE: score, "iteration": 300 * step})

    assert report(good, 1, 10.0) == report(long, 1, 9.0) == TrialScheduler.CONTINUE
    assert report(bad, 1, 30.0) == TrialScheduler.STOP  # the rungs cut as before
    assert all(report(long, step, 8.0) == TrialScheduler.CONTINUE for step in range(2, 9))  # 4 = max_t and on
    assert set(StopLedger(tmp_path).entries()) == {"bad"}


def test_a_lengthened_trial_cut_at_a_rung_at_max_t_has_its_stop_recorded(tmp_path):
    """Trials of 900 iterations evaluated every 300: ASHA's last rung lies at max_t (3 reports). A
    lengthened trial below the cut there is stopped by ASHA, and the ledger says so."""
    from ray.tune.schedulers import TrialScheduler

    from trainable.experiment import SCORE

    (tmp_path / "study.toml").write_text("[fixed]\niterations = 900\neval_every = 300\n")
    asha = make_scheduler(load_spec(tmp_path / "study.toml", baselines=()), tmp_path)
    trials = [_Trial(name, {"iterations": 1800, "eval_every": 300}) for name in "abc"]
    for trial in trials:
        asha.on_trial_add(None, trial)
    for trial, score in zip(trials, (1.0, 2.0, 3.0)):
        asha.on_trial_result(None, trial, {"training_iteration": 1, SCORE: score, "iteration": 300})
    for trial, score in zip(trials, (1.0, 2.0)):
        asha.on_trial_result(None, trial, {"training_iteration": 3, SCORE: score, "iteration": 900})
    assert asha.on_trial_result(None, trials[2], {"training_iteration": 3, SCORE: 9.0,
                                                  "iteration": 900}) == TrialScheduler.STOP
    assert StopLedger(tmp_path).get("c")["stop_reason"] == "asha"
