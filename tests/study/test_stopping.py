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
