from trainable.verdict import LOSS_COLLAPSE, MODE_COLLAPSE, NONE, collapse_verdict


def row(iteration, d_loss=0.6, accuracy=0.7, diversity=0.9, coverage=0.5, **extra):
    return {"iteration": iteration, "d_loss": d_loss, "g_loss": 1.0, "d_real_accuracy": accuracy,
            "d_fake_accuracy": accuracy, "diversity_min": diversity, "coverage": coverage, **extra}


def test_healthy_history_has_no_verdict():
    assert collapse_verdict([row(i * 1000) for i in range(1, 10)]).kind == NONE


def test_non_finite_loss_is_loss_collapse_at_once():
    verdict = collapse_verdict([row(1000), row(2000, d_loss=None, nonfinite=True)], grace=10_000)
    assert verdict.kind == LOSS_COLLAPSE and "non-finite" in verdict.evidence and verdict.iteration == 2000


def test_loss_collapse_needs_patience_consecutive_reports():
    winning = [row(i * 1000, d_loss=0.001, accuracy=1.0) for i in range(3, 6)]
    assert collapse_verdict(winning, patience=3).kind == LOSS_COLLAPSE
    broken = [winning[0], row(4000), winning[2]]
    assert collapse_verdict(broken, patience=3).kind == NONE
    assert collapse_verdict(winning[:2], patience=3).kind == NONE
    perfect = [row(i * 1000, d_loss=0.05, accuracy=1.0) for i in range(3, 6)]
    verdict = collapse_verdict(perfect, patience=3)
    assert verdict.kind == LOSS_COLLAPSE and "1.000" in verdict.evidence and verdict.iteration == 3000
    # A D right 99.5 % of the time with a non-zero loss is no collapse: our best run looked so.
    assert collapse_verdict([row(i * 1000, d_loss=0.05, accuracy=0.995) for i in range(3, 6)]).kind == NONE
    assert collapse_verdict([row(i * 1000, d_loss=0.05, accuracy=0.995) for i in range(3, 6)],
                            accuracy=0.99).kind == LOSS_COLLAPSE


def test_mode_collapse_from_diversity_or_coverage():
    low_diversity = [row(i * 1000, diversity=0.1, diversity_lowest_class="happy") for i in range(3, 6)]
    verdict = collapse_verdict(low_diversity)
    assert verdict.kind == MODE_COLLAPSE and "happy" in verdict.evidence
    low_coverage = [row(i * 1000, coverage=0.01) for i in range(3, 6)]
    assert collapse_verdict(low_coverage).kind == MODE_COLLAPSE


def test_grace_period_ignores_the_untrained_start():
    early = [row(i * 100, diversity=0.05) for i in range(1, 6)]
    assert collapse_verdict(early, grace=2000).kind == NONE
    assert collapse_verdict(early, grace=0).kind == MODE_COLLAPSE


def test_rows_without_quality_metrics_never_mode_collapse():
    rows = [{k: v for k, v in row(i * 1000).items() if k not in ("diversity_min", "coverage")} for i in range(3, 6)]
    assert collapse_verdict(rows).kind == NONE


def test_diverging_losses_are_loss_collapse():
    diverged = [dict(row(i * 1000), d_loss=60.0 + i) for i in range(3, 6)]
    verdict = collapse_verdict(diverged)
    assert verdict.kind == LOSS_COLLAPSE and "diverged" in verdict.evidence
    high_g = [dict(row(i * 1000), g_loss=30.0) for i in range(3, 6)]
    assert collapse_verdict(high_g).kind == LOSS_COLLAPSE
    # The healthy run's peak (D 1.4, G 5.4) is no divergence.
    assert collapse_verdict([dict(row(i * 1000), d_loss=1.4, g_loss=5.4) for i in range(3, 6)]).kind == NONE


def test_loss_collapse_threshold_follows_the_loss_unless_set():
    from trainable.config import TrainConfig
    from trainable.verdict import LOSS_COLLAPSE_D_LOSS, verdict_for

    assert set(LOSS_COLLAPSE_D_LOSS) == {"bce", "hinge", "least-squares"}
    low = [row(i * 1000, d_loss=0.02) for i in range(3, 6)]
    for loss, threshold in LOSS_COLLAPSE_D_LOSS.items():
        config = TrainConfig.from_dict({"loss": loss})
        expected = LOSS_COLLAPSE if 0.02 < threshold else NONE
        assert verdict_for(low, config).kind == expected
    # a D loss of 0.02 is D winning under hinge and least squares, not yet under cross-entropy
    assert [verdict_for(low, TrainConfig.from_dict({"loss": loss})).kind for loss in ("bce", "hinge", "least-squares")] \
        == [NONE, LOSS_COLLAPSE, LOSS_COLLAPSE]
    assert verdict_for(low, TrainConfig.from_dict({"loss": "hinge", "loss_collapse_d_loss": 0.01})).kind == NONE
    assert verdict_for(low, TrainConfig.from_dict({"loss_collapse_d_loss": 0.001})).kind == NONE
