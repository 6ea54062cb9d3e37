"""Each figure's data on a generated study folder whose outcomes are known, and a local trial."""

import json
import math
import shutil
from collections import Counter

import numpy as np
import pytest

from analysis import read_experiment
from analysis._common import escape
from analysis._curves import curve_traces, get_curves_info
from analysis._grids import get_grids_info, plan_frames, thumbnail_bytes
from analysis._history import get_history_info, plot_history
from analysis._importance import MIN_TRIALS, get_importance_info
from analysis._leaderboard import format_ranking, get_leaderboard_info, leaderboard_html
from analysis._nodes import get_nodes_info, nodes_html, short_ids
from analysis._parallel import get_parallel_info, plot_parallel
from analysis._remedies import get_remedies_info, plot_remedies
from analysis._stops import StopsInfo, get_stops_info, plot_collapse_map
from tests.synthetic_study import node_host, node_id, write_synthetic_study
from analysis.dashboard import build_dashboard, script_json
from study.spec import DEFAULT_SEARCH, SPACES
from trainable.config import REMEDY_FIELDS, TrainConfig

COLLAPSED = ("mode-collapse", "loss-collapse")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "study"
    truth = write_synthetic_study(path, trials=24, evaluations=6)
    return path, truth


def test_leaderboard_ranks_by_score_collapsed_below_the_judged_healthy_with_baselines_marked(synthetic):
    path, truth = synthetic
    info = get_leaderboard_info(read_experiment(path))
    names = [row.name for row in info.rows]
    # The synthetic study's completed trials report at or past collapse_grace (400) three times: the
    # verdict judged them healthy. Its ASHA trials stopped at 300, before the verdict's window.
    judged = [n for n in names if truth[n]["reason"] == "completed"]
    collapsed = [n for n in names if truth[n]["reason"] in COLLAPSED]
    stopped = [n for n in names if truth[n]["reason"] == "asha"]
    assert judged and collapsed and stopped and len(names) == len(truth)
    assert max(map(names.index, judged)) < min(map(names.index, collapsed))
    in_order = [n for n in names if n in judged + stopped]  # the trials not collapsed: by score
    assert [truth[n]["score"] for n in in_order] == sorted(truth[n]["score"] for n in in_order)
    # A stopped trial ranks above a collapsed one exactly where its score beats the collapsed
    # trial's and the worst judged healthy one's.
    worst = max(truth[n]["score"] for n in judged)
    for c in collapsed:
        for s in stopped:
            assert (names.index(s) < names.index(c)) == (truth[s]["score"] < max(truth[c]["score"], worst))
    assert any(truth[n]["score"] < worst for n in collapsed)  # a collapsed one that scored better than some judged
    assert any(names.index(c) < names.index(s) for c in collapsed for s in stopped)
    assert {row.name: row.baseline for row in info.rows if row.baseline} == {
        n: t["baseline"] for n, t in truth.items() if t["baseline"]}
    assert info.params == list(DEFAULT_SEARCH)
    assert [row.rank for row in info.rows] == list(range(1, len(truth) + 1))
    row = info.rows[0]
    assert row.score == pytest.approx(truth[row.name]["score"]) and row.iteration == 600
    paper = TrainConfig()
    for row in info.rows:  # the changes column names exactly the params that differ from the paper's V0
        changed = [item.split("=", 1)[0] for item in row.changes.split(", ")] if row.changes else []
        assert changed == [key for key, value in row.params.items()
                           if TrainConfig.from_dict({key: value}) != paper], (row.changes, row.params)
    assert any(row.changes for row in info.rows) and all(not row.changes for row in info.rows if row.baseline == "V0")
    table = format_ranking(info, top=3)
    assert table.splitlines()[1].split()[1] == names[0] and f"... {len(truth) - 3} more" in table


def test_the_ranking_table_keeps_its_columns_aligned_when_a_baseline_label_is_long(synthetic):
    path, _ = synthetic
    info = get_leaderboard_info(read_experiment(path))
    header, *lines = format_ranking(info).splitlines()
    assert any("(paper V0)" in line for line in lines)  # 25 characters: wider than the column's 22
    rows = {row.name: row for row in info.rows}
    assert len(lines) == len(rows)
    for line in lines:
        row = rows[line.split()[1]]
        assert line.index(f" {row.stop_reason} ") == header.index(" stop "), line
        assert line.rindex("  " + (row.changes or "-")) == header.index("  changes"), line


def test_history_follows_start_order_and_best_so_far_counts_healthy_trials_only(synthetic):
    path, truth = synthetic
    info = get_history_info(read_experiment(path))
    assert info.names == sorted(truth)  # the generator starts trial k at minute k
    best, expected = None, []
    for name in info.names:
        if truth[name]["reason"] not in COLLAPSED and (best is None or truth[name]["score"] < best):
            best = truth[name]["score"]
        expected.append(best)
    assert info.best_so_far == pytest.approx(expected)
    figure = plot_history(info)
    groups = {trace["name"]: len(trace["x"]) for trace in figure["data"] if trace["mode"] == "markers"}
    assert groups == dict(Counter(t["reason"] for t in truth.values()))


def test_stop_counts_and_collapse_map_points(synthetic):
    path, truth = synthetic
    info = get_stops_info(read_experiment(path))
    counts = dict(zip(info.reasons, info.counts))
    assert {k: v for k, v in counts.items() if v} == dict(Counter(t["reason"] for t in truth.values()))
    assert {p.name: p.iteration for p in info.points} == {n: t["evaluations"] * 100 for n, t in truth.items()}
    figure = plot_collapse_map(info)
    shown = sum(len(trace["x"]) for trace in figure["data"] if trace["xaxis"] == "x")
    assert shown == len(truth)  # every trial on the first parameter's panel


def test_curves_carry_every_report_freeze_events_and_the_stop(synthetic):
    path, truth = synthetic
    experiment = read_experiment(path)
    curves = get_curves_info(experiment)
    for trial in experiment.trials:
        c = curves[trial.name]
        assert c.iterations == [row["iteration"] for row in trial.rows]
        assert c.d_accuracy == pytest.approx([(r["d_real_accuracy"] + r["d_fake_accuracy"]) / 2 for r in trial.rows])
        assert c.stop_reason == truth[trial.name]["reason"] and c.stop_iteration == c.iterations[-1]
        number = int(trial.name.split("_")[1])
        assert c.freeze_events == ([(150, "freeze")] if number % 3 == 0 else [])
    traces = curve_traces(curves["trial_00000"], "#000")
    assert any(t.get("text") == ["freeze"] for t in traces)
    stop = traces[-1]
    assert stop["x"] == [600] and stop["y"] == [pytest.approx(truth["trial_00000"]["score"], rel=1e-4)]


def test_parallel_coordinates_map_choices_to_their_positions(synthetic):
    path, truth = synthetic
    experiment = read_experiment(path)
    info = get_parallel_info(experiment)
    assert [d.name for d in info.dimensions] == [*DEFAULT_SEARCH, "stop reason"]
    filters = next(d for d in info.dimensions if d.name == "d_filters")
    by_name = {t.name: t for t in experiment.trials}
    for name, position in zip(info.names, filters.values):
        assert filters.ticktext[int(position)] == by_name[name].params["d_filters"]
    lr = next(d for d in info.dimensions if d.name == "g_lr")
    assert lr.ticktext is None and lr.log is bool(DEFAULT_SEARCH["g_lr"].get("log"))  # the axis follows the range
    assert info.scores == pytest.approx([truth[n]["score"] for n in info.names])


def test_importance_uses_finished_trials_and_needs_enough_of_them(synthetic, tmp_path):
    path, truth = synthetic
    info = get_importance_info(read_experiment(path))
    assert sorted(info.params) == sorted(DEFAULT_SEARCH)
    assert sum(info.importances) == pytest.approx(1.0)
    assert info.importances == sorted(info.importances, reverse=True)
    assert info.trials_used == len(truth)
    small = tmp_path / "small"
    write_synthetic_study(small, trials=MIN_TRIALS - 1, evaluations=2)
    few = get_importance_info(read_experiment(small))
    assert few.params == [] and f"at least {MIN_TRIALS}" in few.note


def test_grids_budget_full_then_thumbnails_then_fewer(synthetic):
    path, truth = synthetic
    info = get_grids_info(read_experiment(path))
    assert [s.kind for s in info.showcase] == ["best"] * 4 + ["baseline"] * 3 + ["reference"]
    # The best are searched trials that ran to their end: an ASHA-cut one is never captioned "best".
    searched = sorted((n for n, t in truth.items() if t["reason"] == "completed" and not t["baseline"]),
                      key=lambda n: truth[n]["score"])
    assert [s.name for s in info.showcase[:4]] == searched[:4]
    assert [s.label.split("(")[-1] for s in info.showcase[4:]] == [
        "the paper's V0)", "the paper's V1)", "the paper's V2)", "reference recipe)"]
    ranked = [row.name for row in get_leaderboard_info(read_experiment(path)).rows]
    first = info.showcase[0]
    assert first.caption == f"rank {ranked.index(first.name) + 1} of {len(truth)}, completed"
    assert info.showcase[-1].caption.startswith("reference recipe, rank ")
    total = sum(t["evaluations"] for t in truth.values())
    assert plan_frames(info.timelines, 10**9) .level == "full"
    tight = plan_frames(info.timelines, 2 * total * 3000)
    assert tight.level == "thumbnail" and tight.shown == total
    small = plan_frames(info.timelines, total * 1500)
    assert 0 < small.shown < total
    for name, kept in small.keep.items():
        frames = info.timelines[name]
        assert kept[0] == 0 and kept[-1] == len(frames) - 1
        first_collapsed = next((i for i, f in enumerate(frames) if f.verdict != "none"), None)
        if first_collapsed is not None:
            assert first_collapsed in kept


def test_thumbnail_made_from_an_old_grid_equals_the_stored_one(synthetic, tmp_path):
    path, _ = synthetic
    frame = get_grids_info(read_experiment(path)).timelines["trial_00003"][0]
    stored = frame.thumb.read_bytes()
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(frame.grid, old / "grid.png")
    legacy = frame._replace(grid=old / "grid.png", thumb=old / "missing.thumb.png")
    assert thumbnail_bytes(legacy, 7, 8) == stored


def test_dashboard_escapes_text_from_trial_folders(synthetic, tmp_path):
    path, _ = synthetic
    study = tmp_path / "evil"
    shutil.copytree(path, study)
    params_file = study / "trial_00004" / "params.json"
    params = json.loads(params_file.read_text())
    params["d_filters"] = '<img src=x onerror="alert(1)">'
    params_file.write_text(json.dumps(params))
    victim = study / "trial_00006"
    (victim / "stop_reason.json").unlink()
    (victim / "result.json").write_text("")
    (victim / "error.txt").write_text('Traceback\nRuntimeError: </script><script>alert("x")</script>\n')
    result = build_dashboard(study, tmp_path / "evil.html")
    page = result.path.read_text()
    assert "onerror=\"alert(1)\"" not in page and '<script>alert("x")' not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page  # shown as text in the table
    assert "RuntimeError: &lt;/script&gt;" in page
    assert "\\u003c/script\\u003e" in script_json("</script>")


def test_every_grid_on_the_dashboard_names_its_rows_with_the_data_sets_classes(synthetic, tmp_path):
    path, _ = synthetic
    study = tmp_path / "named"
    shutil.copytree(path, study)
    record = json.loads((study / "study.json").read_text())
    names = ["<i>angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    (study / "study.json").write_text(json.dumps({**record, "classes": names}))
    page = build_dashboard(study, tmp_path / "d.html").path.read_text()
    rows = '<ol class="rows"><li>&lt;i&gt;angry</li>' + "".join(f"<li>{name}</li>" for name in names[1:]) + "</ol>"
    showcase = page.split('<div class="showcase">', 1)[1].split("<h3>Timeline", 1)[0]
    figures = showcase.count("<figure")
    assert figures >= 3 and showcase.count(rows + "<img") == figures  # each last grid, its rows named in order
    assert page.count(rows + '<img id="timeline-image"') == 1  # and the timeline's
    assert "<i>angry" not in page


def test_dashboard_stays_in_its_size_budget(synthetic, tmp_path):
    path, truth = synthetic
    result = build_dashboard(path, tmp_path / "small.html", max_mb=7.5)  # full grids would need ~15 MB
    assert result.bytes <= 7.5e6
    assert result.frame_level == "thumbnail"
    full = build_dashboard(path, tmp_path / "full.html")
    assert full.frame_level == "full" and full.frames_shown == full.frames_total == sum(
        t["evaluations"] for t in truth.values())


def test_a_single_local_trial_reads_and_draws_like_a_study(tmp_path, tiny_data):
    from tests.conftest import TINY
    from trainable.config import TrainConfig
    from trainable.local import run_local_trial

    data_path, _, judge = tiny_data
    config = TrainConfig.from_dict({**TINY, "iterations": 30})
    run_local_trial(tmp_path / "trial", config=config, preset="V1", data=data_path, judge=judge)
    experiment = read_experiment(tmp_path / "trial")
    (row,) = get_leaderboard_info(experiment).rows
    # Started from V1 but with TINY's widths: not the paper's V1, so not labelled as it.
    assert row.baseline is None and row.stop_reason == "completed" and row.iteration == 30
    frames = get_grids_info(experiment).timelines["trial"]
    assert [f.iteration for f in frames] == [10, 20, 30] and all(f.thumb.is_file() for f in frames)
    assert "needs a study" in get_importance_info(experiment).note
    result = build_dashboard(tmp_path / "trial")
    assert result.path == tmp_path / "trial" / "dashboard.html" and result.frames_shown == 3
    assert math.isfinite(result.seconds)
    page = result.path.read_text()
    for section in ("history", "stops", "remedies", "space"):  # they compare trials: not for one
        assert f'id="{section}"' not in page and f'href="#{section}"' not in page
    shown = experiment.trials[0].params
    assert "g_filters" in shown and all(f"<th>{key}</th><td>{escape(value)}</td>" in page
                                        for key, value in shown.items())  # its whole config


def test_analyze_cli_prints_ranking_and_writes_dashboard(synthetic, tmp_path, run_cli):
    path, truth = synthetic
    code, out, err = run_cli("analyze", path, "--out", tmp_path / "d.html", "--top", "5")
    assert code == 0, err
    best = min((n for n, t in truth.items() if t["reason"] not in COLLAPSED), key=lambda n: truth[n]["score"])
    assert out.splitlines()[1].split()[1] == best
    assert (tmp_path / "d.html").is_file() and "dashboard:" in out
    code, _, err = run_cli("analyze", tmp_path / "nothing")
    assert code == 1 and "no such folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("analyze", tmp_path / "empty")
    assert code == 1 and "no trials found" in err


def test_thumbnail_is_small_and_keeps_the_grid_layout():
    from trainable.grid import THUMB_COLUMNS, thumbnail_array

    grid = np.random.default_rng(0).integers(0, 256, (7, 8, 28, 28), dtype=np.uint8)
    thumb = thumbnail_array(grid)
    assert thumb.shape == (7 * 15 - 1, THUMB_COLUMNS * 15 - 1)
    assert len(np.unique(thumb[:14, :14])) <= 16


def test_remedies_split_trials_by_the_papers_value(tmp_path):
    path = tmp_path / "full"
    truth = write_synthetic_study(path, trials=24, evaluations=3, space="full")
    experiment = read_experiment(path)
    info = get_remedies_info(experiment)
    assert [e.field for e in info.effects] == [k for k in REMEDY_FIELDS if k in SPACES["full"]]
    by_name = {t.name: t for t in experiment.trials}
    v0 = next(n for n, t in truth.items() if t["baseline"] == "V0")
    recipe = next(n for n, t in truth.items() if t["baseline"] == "recipe")
    for effect in info.effects:
        assert sorted(effect.without.trials + effect.with_.trials) == sorted(truth)
        assert all(by_name[n].params[effect.field] == effect.paper_value for n in effect.without.trials)
        assert all(by_name[n].params[effect.field] != effect.paper_value for n in effect.with_.trials)
        assert v0 in effect.without.trials  # V0 is the paper: without every remedy
        for group in (effect.without, effect.with_):
            healthy = [n for n in group.trials if truth[n]["reason"] not in COLLAPSED]
            assert sorted(group.scores) == pytest.approx(sorted(truth[n]["score"] for n in healthy))
            assert group.collapsed == len(group.trials) - len(healthy)
    effects = {e.field: e for e in info.effects}
    assert effects["conditioning"].paper_value == "concat" and recipe in effects["conditioning"].with_.trials
    assert effects["g_spectral_norm"].paper_value is False and recipe in effects["g_spectral_norm"].without.trials
    figure = plot_remedies(info)
    assert [len(trace["y"]) for trace in figure["data"]] == [
        sum(len(e.without.scores) for e in info.effects), sum(len(e.with_.scores) for e in info.effects)]


def test_the_summary_says_when_a_finite_space_ran_through_before_the_trials_asked(synthetic, tmp_path):
    from study._summary import summary

    path, truth = synthetic
    assert "every configuration" not in summary(path).splitlines()[0]  # the default space: unbounded
    copy = tmp_path / "study"
    shutil.copytree(path, copy)
    study = json.loads((copy / "study.json").read_text())
    # A space of 4 x 6 = 24 points, the study's 24 trials, where 30 were asked.
    study["spec"].update(samples=30, search={"latent_size": {"values": [32, 64, 80, 100]},
                                             "d_steps": {"low": 1, "high": 6, "log": False, "step": 1,
                                                         "integer": True}})
    (copy / "study.json").write_text(json.dumps(study))
    assert summary(copy).splitlines()[0].endswith(
        f"{len(truth)} trials in {copy} (every configuration of its search space: 24 of the 30 trials asked)")
    study["spec"]["samples"] = 24  # ran to the count asked: nothing to say
    (copy / "study.json").write_text(json.dumps(study))
    assert summary(copy).splitlines()[0].endswith(f"{len(truth)} trials in {copy}")


def test_summary_names_the_reference_compares_with_v0_and_says_when_a_trial_first_worked(synthetic):
    from study._summary import summary

    path, truth = synthetic
    experiment = read_experiment(path)
    text = summary(path)
    assert "reference recipe: FD-intra" in text and "the paper's V0: FD-intra" in text
    assert "baseline V0" not in text
    # Synthetic accuracy climbs 0.6 * progress: it first reaches 0.5 at the 5th of 6 evaluations.
    reached = [(row["timestamp"], t.name, row["iteration"]) for t in experiment.trials for row in t.rows
               if row["cond_accuracy"] >= 0.5]
    stamp, name, iteration = min(reached)
    started = min(t.rows[0]["timestamp"] - t.rows[0]["time_total_s"] for t in experiment.trials)
    minutes, seconds = divmod(round(stamp - started), 60)
    assert (f"working: {name} first reached conditional accuracy 0.500 >= 0.5 at iteration {iteration}, "
            f"{minutes} min {seconds:02d} s into the study") in text
    assert "vs the paper's V0 at iteration 600: FD-intra" in text
    # the best trial's params, floats to 4 significant digits
    best = next(line for line in text.splitlines() if line.startswith("best: ")).split()[1]
    params = dict(item.split("=", 1) for item in
                  next(line for line in text.splitlines() if line.startswith("  params: "))[10:].split(", "))
    trial = next(t for t in experiment.trials if t.name == best)
    assert params.keys() == {key for key in experiment.search if key in trial.params}
    for key, shown in params.items():
        value = trial.params[key]
        assert shown == (f"{value:.4g}" if isinstance(value, float) else str(value))
    assert any(isinstance(trial.params[key], float) and len(repr(trial.params[key])) > 8 for key in params)


def test_plots_are_tall_enough_for_their_titles_and_legends(synthetic):
    experiment = read_experiment(synthetic[0])
    history = plot_history(get_history_info(experiment))["layout"]
    assert history["height"] >= 300 and history["legend"]["y"] < 0  # the legend below the plot
    parallel = plot_parallel(get_parallel_info(experiment))
    assert parallel["layout"]["height"] >= 300 and parallel["layout"]["margin"]["t"] >= 120
    assert parallel["data"][0]["labelangle"] != 0
    collapse = plot_collapse_map(get_stops_info(experiment))["layout"]
    assert collapse["height"] >= 300 * math.ceil(len(experiment.search) / 3) * 0.7
    # each panel named above it, no x-axis title to be read as the next panel's name
    names = [a["text"] for a in collapse["annotations"]]
    assert names == [f"<b>{key}</b>" for key in experiment.search]
    assert not any("title" in value for key, value in collapse.items() if key.startswith("xaxis"))


def test_collapse_map_says_collapsed_only_when_a_trial_did(synthetic):
    info = get_stops_info(read_experiment(synthetic[0]))
    assert "collapsed" in plot_collapse_map(info)["layout"]["title"]["text"].split("(")[0]
    healthy = StopsInfo(info.reasons, info.counts, info.params,
                        [p for p in info.points if p.reason not in COLLAPSED])
    title = plot_collapse_map(healthy)["layout"]["title"]["text"]
    assert title.startswith("Where in the space trials stopped") and "none collapsed" in title


def test_ranking_and_dashboard_show_cas_where_trials_have_it(synthetic, tmp_path):
    path, _ = synthetic
    assert "CAS" not in format_ranking(get_leaderboard_info(read_experiment(path)))
    copy = tmp_path / "study"
    shutil.copytree(path, copy)
    first = sorted(copy.glob("trial_*"))[-1]  # not a baseline: its name is one word of the table
    rows = [json.loads(line) for line in (first / "result.json").read_text().splitlines()]
    rows[-1]["final_cas"] = 0.375
    (first / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    info = get_leaderboard_info(read_experiment(copy))
    assert {row.name: row.final_cas for row in info.rows if row.final_cas is not None} == {first.name: 0.375}
    table = format_ranking(info).splitlines()
    assert table[0].split()[8] == "CAS"
    assert next(line for line in table if first.name in line).split()[8] == "0.375"
    assert 'data-key="final_cas" data-kind="num" class="sortable" title="Classification Accuracy Score' in \
        leaderboard_html(info)
    assert "<b>CAS</b>: Classification Accuracy Score" in build_dashboard(copy, tmp_path / "d.html").path.read_text()


def test_score_headers_explain_themselves_and_the_study_shows_its_fixed_fields(synthetic, tmp_path):
    path, _ = synthetic
    table = leaderboard_html(get_leaderboard_info(read_experiment(path)))
    for key in ("score", "cond_accuracy", "diversity_min", "coverage"):
        assert f'data-key="{key}" data-kind="num" class="sortable" title="' in table
    assert 'title="intra-class Frechet distance' in table
    page = build_dashboard(path, tmp_path / "d.html").path.read_text()
    assert "<b>acc</b>: conditional accuracy" in page  # the legend under the table
    fixed = json.loads((path / "study.json").read_text())["spec"]["fixed"]
    assert fixed and all(f"<th>{key}</th><td>{value}</td>" in page for key, value in fixed.items())
    assert all(f'id="{section}"' in page for section in ("history", "stops", "space", "config"))


def test_a_study_with_metric_fid_is_ranked_summarised_and_drawn_on_fid(synthetic, tmp_path):
    """The study file's metric is what the study ranks on, not FD-intra whatever it says."""
    from study._summary import summary

    path, truth = synthetic
    copy = tmp_path / "study"
    shutil.copytree(path, copy)
    study = json.loads((copy / "study.json").read_text())
    study["spec"]["metric"] = "fid"
    (copy / "study.json").write_text(json.dumps(study))
    for trial_dir in copy.glob("trial_*"):  # fid orders the trials the other way round from fid_intra
        rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        for row in rows:
            row["fid"] = 1000.0 - row["fid_intra"]
        (trial_dir / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    healthy = [n for n, t in truth.items() if t["reason"] not in COLLAPSED]  # fid reverses their order
    info = get_leaderboard_info(read_experiment(copy))
    assert [row.name for row in info.rows if row.name in healthy] == sorted(healthy, key=lambda n: -truth[n]["score"])
    assert info.rows[0].score == pytest.approx(1000.0 - max(truth[n]["score"] for n in healthy))
    assert format_ranking(info).splitlines()[0].split()[4] == "FID"
    text = summary(copy)
    best = info.rows[0]
    assert f"best: {best.name} FID {best.score:.3f}" in text and "FD-intra" not in text
    page = build_dashboard(copy, tmp_path / "d.html").path.read_text()
    assert "Score: Frechet distance in the judge&#x27;s feature space over all classes" in page
    assert "<b>FID</b>" in page and "<b>FD-intra</b>" not in page
    history = plot_history(get_history_info(read_experiment(copy)))
    assert history["layout"]["yaxis"]["title"]["text"] == "FID (lower is better)"
    assert "FID %{y:.3f}" in history["data"][0]["hovertemplate"]


@pytest.fixture(scope="module")
def on_three_nodes(tmp_path_factory):
    """A study whose trials ran on three Ray nodes (0 and 1 on one machine); some moved half way."""
    path = tmp_path_factory.mktemp("nodes") / "study"
    return path, write_synthetic_study(path, trials=13, evaluations=4, nodes=3)


def test_where_trials_ran_counts_trials_and_reports_per_node_and_the_moved_ones(on_three_nodes):
    path, truth = on_three_nodes
    info = get_nodes_info(read_experiment(path))
    assert [node.node_id for node in info.nodes] == [node_id(0), node_id(1), node_id(2)]  # by first report
    assert info.trial_nodes == {name: t["nodes"] for name, t in truth.items()}
    assert info.moved == ["trial_00006", "trial_00012"]  # every 6th moved to the next node half way
    assert info.trial_nodes["trial_00012"] == [node_id(0), node_id(1)]
    for number, node in enumerate(info.nodes):
        ran = [name for name, t in truth.items() if node.node_id in t["nodes"]]
        assert sorted(node.trials) == ran
        # a trial that moved reported its first half of evaluations on one node, the rest on the other
        assert node.reports == sum(t["evaluations"] if len(t["nodes"]) == 1 else
                                   t["evaluations"] // 2 if t["nodes"][0] == node.node_id else
                                   t["evaluations"] - t["evaluations"] // 2 for name, t in truth.items() if name in ran)
        assert (node.hostname, node.node_ip) == node_host(number) and node.short == node.node_id[:8]
    assert info.nodes[0].hostname == info.nodes[1].hostname  # two nodes of one machine, told apart by id
    assert info.label(node_id(2)) == f"{node_id(2)[:8]} ({node_host(2)[0]}, 10.0.0.2)"


def test_short_node_ids_grow_until_they_tell_nodes_apart():
    assert short_ids(["0123456789ab", "fedcba987654"]) == {"0123456789ab": "01234567", "fedcba987654": "fedcba98"}
    assert short_ids(["0123456789ab", "0123456709ab"]) == {"0123456789ab": "012345678", "0123456709ab": "012345670"}
    assert short_ids([]) == {}


def test_ranking_has_a_node_column_only_when_trials_ran_on_several_nodes(on_three_nodes, synthetic, tmp_path):
    path, truth = on_three_nodes
    info = get_leaderboard_info(read_experiment(path))
    assert info.several_nodes and {row.name: list(row.nodes) for row in info.rows} == {
        name: t["nodes"] for name, t in truth.items()}
    table = leaderboard_html(info)
    assert '<th data-key="node" data-kind="text" class="sortable">node</th>' in table
    moved = f"{node_id(0)[:8]} &gt; {node_id(1)[:8]}"  # where trial 12 ran, in order; the last one's host
    host = node_host(0)[0]
    assert (f'<td data-value="{moved}" class="node" title="ran on node {node_id(0)} ({host}, 10.0.0.1), then on node '
            f'{node_id(1)} ({host}, 10.0.0.1)"><code>{node_id(0)[:8]}</code> &gt;<br><code>{node_id(1)[:8]}</code>'
            f'<br><span class="host">{host}</span></td>') in table
    terminal = format_ranking(info).splitlines()
    assert terminal[0].split()[3] == "node"
    assert next(line for line in terminal if "trial_00012" in line).split()[3] == f"{node_id(0)[:8]}>{node_id(1)[:8]}"
    page = build_dashboard(path, tmp_path / "d.html").path.read_text()
    assert '<section id="nodes"><h2>Where trials ran</h2>' in page and '<a href="#nodes">nodes</a>' in page
    assert page.count(f'<td title="{node_id(0)}"><code>{node_id(0)[:8]}</code></td>') == 1
    assert "2 trial(s) ran on more than one node" in page
    # One node: no node column (the page stays narrow), and the section says where they all ran.
    single = get_leaderboard_info(read_experiment(synthetic[0]))
    assert not single.several_nodes and 'data-key="node"' not in leaderboard_html(single)
    assert format_ranking(single).splitlines()[0].split()[3] == "iter"
    assert len(get_nodes_info(read_experiment(synthetic[0])).nodes) == 1


def test_where_trials_ran_is_escaped_and_absent_when_reports_do_not_say(on_three_nodes, tmp_path):
    path, _ = on_three_nodes
    study = tmp_path / "evil"
    shutil.copytree(path, study)
    for result in study.glob("trial_*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        result.write_text("".join(json.dumps({**row, "hostname": "<script>alert(1)</script>"}) + "\n" for row in rows))
    page = build_dashboard(study, tmp_path / "evil.html").path.read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for result in study.glob("trial_*/result.json"):  # a study from before reports named their node
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        result.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "node_id"}) + "\n" for row in rows))
    experiment = read_experiment(study)
    assert get_nodes_info(experiment).nodes == [] and not get_leaderboard_info(experiment).several_nodes
    page = build_dashboard(study, tmp_path / "old.html").path.read_text()
    assert 'id="nodes"' not in page and 'data-key="node"' not in page
    assert "do not say" in nodes_html(get_nodes_info(experiment))
