"""The experiment folder: the one owner of its file names, stop reasons, metric keys and rows.

trainable/ and study/ write these folders, analysis/ reads them; all three import the names
from here, and the folder is read by the functions here, so a local trial and a whole study
are read alike.

    STUDY/                       a study (a local trial folder is one TRIAL/ on its own)
        study.json               what ran: name, storage, data and its classes, the spec, the baselines' points (StudyRecord)
        driver.lock              locked (flock) by the driver running the study, its pid inside
        ray_session.json         while it runs: the pids of its embedded Ray, ended if a killed driver left them
        stop_reasons.jsonl       the driver's ledger: why each trial ended (first decision stands)
        started_as.jsonl         the driver's: the baseline each trial started as (under PBT a trial may
                                 end with a baseline's params it took from another)
        optuna.log               the study in Optuna's terms (study/_callbacks.py), for optuna-dashboard
        optuna_artifacts/        its artifact store: each report's sample grid
        dashboard.html           written by `analyze` (a single trial folder gets one too)
        trial_ID/                one per trial, the files of a Ray Tune trial folder:
            params.json          the trial's parameters (config fields, plus preset, data, judge_steps)
            result.json          one JSON object per report, one per line (append-only)
            progress.csv         the same rows as a table
            stop_reason.json     a study trial: why it ended, as the driver decided
            error.txt            a study trial that raised: Ray's traceback
            checkpoint_NNNNNN/   the last checkpoints: trainer.pt, its SHA-256 in trainer.pt.sha256, a
                                 study trial's history.json (its reports, for the collapse verdict)
                                 and lineage.json (the PBT schedule of the weights in it)
            grids/iteration_NNNNNNN.png        the sample grid at each evaluation (rows = classes)
            grids/iteration_NNNNNNN.thumb.png  its small version for dashboards

It imports nothing of the project but the config, the errors and the atomic file writer, so every
module may import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TypedDict, TypeVar

from trainable._io import append_whole, write_bytes_atomic, write_text_atomic  # public here: writers of experiment folders use them
from trainable.config import TrainConfig, param_value, preset
from trainable.errors import UserError

STUDY_FILE = "study.json"
LOCK_FILE = "driver.lock"  # held by the one driver writing a study or trial folder; holds its pid
SESSION_FILE = "ray_session.json"  # the processes of a running study's embedded Ray
LEDGER_FILE = "stop_reasons.jsonl"
STARTS_FILE = "started_as.jsonl"  # the driver's: which baseline each trial started as (PBT changes params)
JOURNAL_FILE = "optuna.log"
ARTIFACTS_DIR = "optuna_artifacts"  # the Optuna artifact store beside it: every trial's sample grids
TRIAL_PREFIX = "trial_"
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
STOP_FILE = "stop_reason.json"
ERROR_FILE = "error.txt"
GRIDS_DIR = "grids"
DASHBOARD_FILE = "dashboard.html"  # analysis dashboard's default output, in the folder it shows
CHECKPOINT_FILE = "trainer.pt"  # in a checkpoint folder: the trainer's whole state (trainable/checkpoint.py)
DIGEST_FILE = "trainer.pt.sha256"  # beside it: its SHA-256, so a damaged checkpoint is never loaded
HISTORY_FILE = "history.json"  # in a study trial's checkpoint: its reports so far (the verdict reads them)
# In a study trial's checkpoint: {"trial": its trial id, "iteration": I, "schedule": SCHEDULE}, the
# configs its weights were trained with, through the trials PBT copied them from.
LINEAGE_FILE = "lineage.json"

# Why a trial ended (each report's "stop_reason", stop_reason.json, the ledger).
COMPLETED = "completed"  # reached its configured iterations
ASHA = "asha"  # cut by the ASHA scheduler
MODE_COLLAPSE = "mode-collapse"  # the collapse verdict: generated images stopped varying
LOSS_COLLAPSE = "loss-collapse"  # the collapse verdict: D won, losses diverged, or a loss went non-finite
ERROR = "error"  # the trial raised and ran out of retries
INTERRUPTED = "interrupted"  # a local trial stopped with Ctrl-C (it can resume)
RUNNING = "running"  # no reason yet: still running, or its driver was killed
STOP_REASONS = (COMPLETED, ASHA, MODE_COLLAPSE, LOSS_COLLAPSE, ERROR, INTERRUPTED, RUNNING)
COLLAPSES = (MODE_COLLAPSE, LOSS_COLLAPSE)
EARLY = (ASHA, *COLLAPSES)  # stopped before the end by the study: Optuna records them PRUNED
# The collapse verdict of one report (each row's "verdict"): a collapse kind, or none.
NONE = "none"

# Metric keys of a report row (the judge's scores) and the study's score.
FID = "fid"  # judge-feature Frechet distance over all classes
FID_INTRA = "fid_intra"  # its mean over classes: the primary quality score, lower is better
METRIC_LABELS = {FID_INTRA: "FD-intra", FID: "FID"}  # how a study's metric is named in its output
COND_ACCURACY = "cond_accuracy"  # share of samples the judge assigns to the intended class
WORKING_ACCURACY = 0.5  # judge conditional accuracy that counts as a working configuration (chance: 1/classes)
DIVERSITY_MIN = "diversity_min"  # lowest per-class diversity ratio (generated / real spread)
DIVERSITY_MEAN = "diversity_mean"
COVERAGE = "coverage"
JUDGE_ACCURACY = "judge_accuracy"  # the judge's own held-out accuracy: how far its scores can be trusted
# The same per class, in the data set's class order; and the class with the lowest diversity.
FID_PER_CLASS, DIVERSITY_PER_CLASS = "fid_per_class", "diversity_per_class"
COVERAGE_PER_CLASS, COND_ACCURACY_PER_CLASS = "coverage_per_class", "cond_accuracy_per_class"
DIVERSITY_LOWEST_CLASS = "diversity_lowest_class"
FREEZE_EVENTS = "freeze_events"  # the freeze rule's freezes and unfreezes since the report before, each with its reason
# Each event's "rules": which of the rules froze D, FREEZE_AFTER and/or FREEZE_ACCURACY ([] when it
# thaws; events written before it have only the reason's text).
FREEZE_RULES, FREEZE_AFTER, FREEZE_ACCURACY = "rules", "after", "accuracy"
SCORE = "score"  # what a study's scheduler and searcher see: its metric, finite, lower is better
# A report's other keys: the step statistics' D and G losses, the collapse verdict and its evidence,
# the sample grid (a path relative to the trial folder), and in the last row why the trial ended
# (also the key of the ledger's entries and of stop_reason.json).
D_LOSS, G_LOSS = "d_loss", "g_loss"
VERDICT, VERDICT_EVIDENCE = "verdict", "verdict_evidence"
GRID = "grid"
STOP_REASON = "stop_reason"
# Classification Accuracy Score (trainable/cas.py) of a trial's generator, in its last row only,
# where the study asked for it (final_cas = true): the accuracy, its per-class values, its cost.
FINAL_CAS = "final_cas"
FINAL_CAS_PER_CLASS = "final_cas_per_class"
FINAL_CAS_S = "final_cas_s"


def metric_label(metric: str) -> str:
    """A study metric's name in tables and figures: "FD-intra" for fid_intra, "FID" for fid."""
    return METRIC_LABELS.get(metric, metric)


NODE_ID = "node_id"  # a study report's Ray node (beside Tune's hostname and node_ip): where the trial ran
HOSTNAME, NODE_IP = "hostname", "node_ip"  # Tune adds both to every report of a study trial
# The mutable fields (trainable.config.MUTABLE_FIELDS) in force at a report, as the trainer really
# used them (rates and betas read back from its optimisers): {field: value}.
HYPER = "hyper"
# In the first report after a trial's config changed mid-training (PBT's exploit and explore, a
# replayed schedule): {"iteration": I, "from_trial": the trial whose weights it took or null,
# "changes": {field: [old, new]}}, values in the study's form.
CONFIG_CHANGE = "config_change"

# params.json keys that are the trial's context, not config fields. FROM: where a trial started
# with `trial --from` took its configuration ({"trial": folder, "study": name or null, "rank": K}).
FROM = "from"
# SCHEDULE: a PBT schedule a local trial replays: [{"iteration": I, "trial": id, "config": params}, ...],
# the first at iteration 0; each config (study form) is in force from its iteration on.
SCHEDULE = "schedule"
# CONTINUES: the trial of its own study a study trial goes on from, at that trial's end ([study]
# lengthen): {"trial": its Tune trial id, "uri": its folder in the study's storage, "iteration": I}.
CONTINUES = "continues"
META_KEYS = ("preset", "data", "judge_steps", FROM, SCHEDULE, CONTINUES)


def start_iteration(params: dict[str, Any]) -> int:
    """The iteration a study trial started training at: its source's where it goes on from one
    (CONTINUES), else 0. Its compute is its iterations past this."""
    source = params.get(CONTINUES)
    return int(source["iteration"]) if isinstance(source, dict) and isinstance(source.get("iteration"), int) else 0


def trial_params(config: TrainConfig, **meta: Any) -> dict[str, Any]:
    """What params.json holds, the same for a local trial and a study trial: every config field
    in the study's form (``param_value``: filters as "a,b,c", a switched-off rule as "off"),
    then the meta keys given."""
    return {**{key: param_value(value) for key, value in config.to_dict().items()}, **meta}


# Fields that set how long and how a trial is run and judged, not which GAN it trains: a local
# trial of a preset that changes only these still is that preset.
RUN_FIELDS = frozenset({"iterations", "eval_every", "eval_samples_per_class", "grid_columns", "collapse_patience",
                        "collapse_grace", "mode_collapse_diversity", "mode_collapse_coverage", "loss_collapse_d_loss",
                        "loss_collapse_accuracy", "loss_collapse_divergence", "seed", "device", "precision",
                        "cuda_graphs"})


def preset_changes(params: dict[str, Any], name: str) -> list[str]:
    """The fields of params.json (study form) in which a trial differs from preset ``name``'s GAN."""
    reference = trial_params(preset(name))
    return sorted(key for key, value in params.items()
                  if key in reference and key not in RUN_FIELDS and value != reference[key])


def config_change(iteration: int, changes: dict[str, tuple[Any, Any]], from_trial: str | None = None) -> dict:
    """A report's CONFIG_CHANGE entry, from TrainConfig.changes_from's {field: (old, new)}."""
    return {"iteration": iteration, "from_trial": from_trial,
            "changes": {key: [param_value(old), param_value(new)] for key, (old, new) in changes.items()}}


def schedule_configs(schedule: list[dict[str, Any]]) -> dict[int, TrainConfig]:
    """A SCHEDULE as {iteration: config}, each step's config validated."""
    return {int(step["iteration"]): TrainConfig.from_dict(split_params(step["config"])[0]) for step in schedule}


def ray_policy(schedule: list[dict[str, Any]]) -> list[list[Any]]:
    """A SCHEDULE as the rows of a Ray PBT policy file (pbt_policy_*.txt, one JSON list a line), which
    ray.tune.schedulers.PopulationBasedTrainingReplay replays: [trial tag, tag of the trial it
    cloned, step, step, old config, new config], steps in evaluations (Ray's training_iteration).
    Its replay chains a row to the one before when the earlier row's first tag is the later's second."""
    rows = []
    for number, (before, step) in enumerate(zip(schedule, schedule[1:]), 1):
        evaluation = int(step["iteration"]) // int(step["config"]["eval_every"])
        rows.append([f"step_{number}", f"step_{number - 1}", evaluation, evaluation, before["config"], step["config"]])
    return rows


def checkpoint_iteration(checkpoint_dir: str | Path) -> int:
    """The iteration a study trial's checkpoint holds, from its lineage (-1 where it has none)."""
    try:
        return int(json.loads((Path(checkpoint_dir) / LINEAGE_FILE).read_text())["iteration"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def read_checkpoint_records(checkpoint_dir: str | Path) -> tuple[Any, Any]:
    """(HISTORY_FILE, LINEAGE_FILE) of a study trial's checkpoint folder, as parsed; None for one
    absent or unreadable (a local trial's checkpoint has neither). The callers judge their shape."""
    records = []
    for name in (HISTORY_FILE, LINEAGE_FILE):
        try:
            records.append(json.loads((Path(checkpoint_dir) / name).read_text()))
        except (OSError, ValueError):
            records.append(None)
    return records[0], records[1]


def read_schedule(trial_dir: str | Path) -> list[dict[str, Any]] | None:
    """The SCHEDULE of configs a trial's last weights were trained with: a local replay's from its
    params.json, a study trial's from the lineage of its furthest checkpoint (under PBT a trial's
    checkpoint names restart when it takes another's weights, so not the last by name). None when
    the trial has neither (a study from before lineages were kept)."""
    trial_dir = Path(trial_dir)
    try:
        params = json.loads((trial_dir / PARAMS_FILE).read_text())
    except (OSError, ValueError):
        params = {}
    if isinstance(params, dict) and params.get(SCHEDULE):
        return params[SCHEDULE]
    lineages = []
    for path in trial_dir.glob(f"checkpoint_*/{LINEAGE_FILE}"):
        try:
            lineage = json.loads(path.read_text())
            lineages.append((int(lineage["iteration"]), path.stat().st_mtime, lineage["schedule"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(lineages, key=lambda item: item[:2])[2] if lineages else None


def replay_schedule(schedule: list[dict[str, Any]], overrides: dict[str, Any], *, name: str) -> list[dict[str, Any]]:
    """A SCHEDULE with ``overrides`` (config fields) on every step, each step's config in its study
    form; refused in one line where a step changes a field that cannot change mid-training."""
    steps, previous = [], None
    for step in schedule:
        config = TrainConfig.from_dict(overrides, base=TrainConfig.from_dict(split_params(step["config"])[0]))
        fixed = config.fixed_changes_from(previous) if previous else []
        if fixed:
            raise UserError(f"{name}: its schedule changes {fixed[0]} at iteration {step['iteration']}, which "
                            "cannot change mid-training")
        steps.append({"iteration": int(step["iteration"]), "trial": step.get("trial"), "config": trial_params(config)})
        previous = config
    return steps


def matches_point(params: dict[str, Any], point: dict[str, Any]) -> bool:
    """Whether a trial's parameters (study form) are a given point, e.g. one of a study's baselines."""
    return all(key in params and params[key] == value for key, value in point.items())


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """params.json (or a Tune trial's config) -> (config values, meta)."""
    meta = {key: params[key] for key in META_KEYS if key in params}
    return {key: value for key, value in params.items() if key not in META_KEYS}, meta


def trial_context(trial_dir: str | Path) -> dict[str, Any]:
    """The data set and judge steps a trial was trained with ({"data", "judge_steps"}, None where
    unknown): a local trial's params.json holds them, a study trial's are in its study.json."""
    trial_dir = Path(trial_dir)
    try:
        params = json.loads((trial_dir / PARAMS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        params = {}
    study = read_study(trial_dir.parent) or {}
    return {key: params[key] if key in params else study.get(key) for key in ("data", "judge_steps")}


def grid_name(iteration: int) -> str:
    return f"iteration_{iteration:07d}.png"


def grid_file(iteration: int) -> str:
    """The grid of an evaluation, relative to its trial folder (each row's "grid")."""
    return f"{GRIDS_DIR}/{grid_name(iteration)}"


def thumb_name(grid: str) -> str:
    """grids/iteration_0001000.png -> grids/iteration_0001000.thumb.png"""
    return grid[:-len(".png")] + ".thumb.png"


def trial_dir_name(trial_id: str) -> str:
    return f"{TRIAL_PREFIX}{trial_id}"


def read_json_lines(path: str | Path, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Every complete JSON line of an append-only file (result.json, the ledger).

    A line cut short by a kill, or written while we read, is skipped and, when ``skipped``
    is given, named there; the lines after it are still read.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if skipped is not None:
                skipped.append(f"{path} line {number}: incomplete JSON (the trial was still writing or was killed)")
            continue
        if isinstance(row, dict):
            rows.append(row)
        elif skipped is not None:
            skipped.append(f"{path} line {number}: a JSON {type(row).__name__}, not a record")
    return rows


def reports_made(experiment_dir: str | Path) -> list[tuple[float, int, dict[str, Any]]]:
    """Every report of a study's trials in the order they were made: (its time, the training
    iterations made for it, the row). What compute a study spent, whatever the machine: a report made
    again from a checkpoint (a retried trial) counts its trial's interval again, and a trial that went
    on from another's end (CONTINUES) counts from there (the benchmarks count compute so)."""
    made = []
    for result in Path(experiment_dir).glob(f"{TRIAL_PREFIX}*/{RESULT_FILE}"):
        try:
            params = json.loads((result.parent / PARAMS_FILE).read_text())
        except (OSError, ValueError):
            params = {}
        previous, every = start_iteration(params), params.get("eval_every", TrainConfig().eval_every)
        for row in read_json_lines(result):
            if is_report(row):
                made.append((row.get("timestamp") or 0, row["iteration"] - previous if row["iteration"] > previous
                             else every, row))
                previous = row["iteration"]
    return sorted(made, key=lambda report: report[0])


# Keys of a report that, when present, hold a number (or null): a row where one holds anything else
# is not a report of ours, and the readers would trip over it.
NUMERIC_KEYS = ("iteration", "training_iteration", "time_total_s", FID, FID_INTRA, COND_ACCURACY, DIVERSITY_MIN,
                DIVERSITY_MEAN, COVERAGE, SCORE)


def is_report(row: dict[str, Any]) -> bool:
    """A result row the readers can use: a whole-number iteration, and numbers where numbers belong."""
    iteration = row.get("iteration")
    if isinstance(iteration, bool) or not isinstance(iteration, int):
        return False
    return all(row.get(key) is None or (isinstance(row[key], (int, float)) and not isinstance(row[key], bool))
               for key in NUMERIC_KEYS)


def lineage(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of one unbroken training history.

    result.json is append-only: when a trial restarts from a checkpoint older than its last
    report (a retried worker, a resumed driver), the reports after that checkpoint come again.
    A row whose iteration does not advance marks such a restart; the abandoned rows it
    replaces are dropped, so no report is counted twice.
    """
    kept: list[dict[str, Any]] = []
    for row in rows:
        while kept and kept[-1].get("iteration", 0) >= row.get("iteration", 0):
            kept.pop()
        kept.append(row)
    return kept


def read_results(trial_dir: str | Path, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """A trial's reports, once each, in order: the one reader of result.json."""
    path = Path(trial_dir) / RESULT_FILE
    rows = []
    for row in read_json_lines(path, skipped):
        if is_report(row):
            rows.append(row)
        elif skipped is not None:
            skipped.append(f"{path}: a record that is not a report (iteration {row.get('iteration')!r})")
    rows = lineage(rows)
    for row in rows:
        row.pop("config", None)  # Tune repeats the trial's config in every row; params.json holds it
    return rows


def write_json(path: str | Path, value: Any, scratch: str | Path | None = None) -> None:
    """Atomically: a reader never sees half a file (``scratch``: see trainable._io.atomic_path)."""
    write_text_atomic(path, json.dumps(value, indent=2) + "\n", scratch)


class StudyRecord(TypedDict, total=False):
    """study.json: what a study is and where it lives; written by study/runner.py (and
    study/replay.py for a seed re-run), read by the study's commands and by analysis/."""

    name: str
    storage: str  # the storage root it was started in (a folder or a URI)
    storage_uri: str  # Tune's experiment path: storage/name
    experiment_dir: str  # this folder, where the driver writes
    data: str  # a prepared .npz's absolute path, or "builtin:synthetic"
    classes: list[str]  # the data set's class names, label 0 first (studies started before: absent)
    judge_steps: int
    spec: dict[str, Any]  # StudySpec.to_dict()
    baselines: dict[str, dict[str, Any]]  # baseline name -> its point of the space
    resources: dict[str, Any]  # the Resources each trial got (once the study started)
    started_at: float  # time.time() when the study started
    warm_start: dict[str, Any]  # the earlier study the sampler was given, and what it took of it
    replay_of: str  # a seed re-run: the study it re-ran
    replayed: list[dict[str, Any]]  # a seed re-run: the trials it re-ran ({"name", "rank", "score", "baseline", ...})


def read_study(experiment_dir: str | Path) -> StudyRecord | None:
    """study.json, or None where there is none (a single trial, a study not yet started)."""
    path = Path(experiment_dir) / STUDY_FILE
    try:
        study = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    if not isinstance(study, dict):
        raise UserError(f"{path}: unreadable (a JSON object expected, got {type(study).__name__})")
    return study


def write_study(experiment_dir: str | Path, study: StudyRecord) -> None:
    write_json(Path(experiment_dir) / STUDY_FILE, study)


def is_study(path: str | Path) -> bool:
    return (Path(path) / STUDY_FILE).exists()


def record_start(experiment_dir: str | Path, trial_id: str, baseline: str | None) -> None:
    """started_as.jsonl: one {"trial_id", "baseline"} line per trial, when the driver first starts it."""
    append_whole(Path(experiment_dir) / STARTS_FILE, (json.dumps({"trial_id": trial_id, "baseline": baseline}) + "\n").encode())


def read_starts(experiment_dir: str | Path) -> dict[str, str | None]:
    """trial id -> the baseline it started as (None: a searched point), from started_as.jsonl."""
    return {entry["trial_id"]: entry.get("baseline") for entry in read_json_lines(Path(experiment_dir) / STARTS_FILE)
            if isinstance(entry.get("trial_id"), str)}


def write_stop(trial_dir: str | Path, record: dict[str, Any], scratch: str | Path | None = None) -> None:
    """stop_reason.json: {"trial_id", "stop_reason", "evidence", "iteration", "score"}."""
    write_json(Path(trial_dir) / STOP_FILE, record, scratch)


def read_stop_reason(trial_dir: str | Path, rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(stop reason, evidence): from the study's stop_reason.json, else the local trial's last
    row, else Tune's error file; a trial with none of them is still running."""
    trial_dir = Path(trial_dir)
    try:
        record = json.loads((trial_dir / STOP_FILE).read_text())
        return record["stop_reason"], record.get("evidence", "")
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        pass
    last = rows[-1] if rows else {}
    if last.get("stop_reason"):
        return last["stop_reason"], last.get("verdict_evidence", "")
    error_file = trial_dir / ERROR_FILE
    if error_file.exists():
        lines = error_file.read_text().strip().splitlines()
        return ERROR, lines[-1] if lines else ""
    return RUNNING, ""


@contextlib.contextmanager
def driver_lock(folder: str | Path, what: str) -> Iterator[None]:
    """One driver at a time writes ``folder``: an OS lock (flock) on its LOCK_FILE, held for the
    block. The OS releases it when the process ends, killed or not, so a dead driver never
    blocks the next; a second driver is refused with the holder's pid."""
    folder = Path(folder)
    for _ in range(10):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:  # a read-only file system, no permission, a file where a folder should be
            raise UserError(f"{folder}: cannot write there ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{what} is in use by another driver (pid {holder}); wait for it to end, "
                            "or stop that process") from None
        if _same_file(fd, folder / LOCK_FILE):
            break
        # The holder before us removed the file as we opened it (a folder it made for a study that
        # never started): a lock on a removed file keeps nobody out. Lock the one there now.
        os.close(fd)
    else:
        raise UserError(f"{what}: its lock file {folder / LOCK_FILE} keeps being removed; is another driver "
                        "starting and failing over and over?")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # and with it the lock


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def reached_working(rows: Sequence[dict[str, Any]], within: int | None = None) -> bool:
    """Whether a trial's reports reached WORKING_ACCURACY (at a report within ``within`` iterations, where given)."""
    return any(isinstance(accuracy := row.get(COND_ACCURACY), (int, float)) and accuracy >= WORKING_ACCURACY
               and (within is None or row.get("iteration", math.inf) <= within) for row in rows)


def judge_samples(row: dict[str, Any], per_class: Any) -> int | None:
    """How many generated samples a report's conditional accuracy was measured on: a class's
    samples (``eval_samples_per_class``) times the classes; None where the report does not say."""
    classes = row.get(COND_ACCURACY_PER_CLASS)
    return per_class * len(classes) if isinstance(per_class, int) and isinstance(classes, list) and classes else None


def still_rising(accuracies: Sequence[float], samples: int | None = None) -> bool:
    """Whether a trial's conditional accuracy (by report) was still rising at its end: its last
    report has its highest, above the one two reports before by more than the judge's noise (the
    standard error of the difference of two accuracies over ``samples`` samples each; none where
    not known). On the shapes a trial at 0.30, 0.26, 0.32 (400 samples: 0.033) was taken for rising,
    and the trial going on from its end fell apart (docs/search.md); those whose continuation worked
    had risen 0.11-0.22."""
    if len(accuracies) < 3 or accuracies[-1] != max(accuracies):
        return False
    last = accuracies[-1]
    noise = math.sqrt(2 * last * (1 - last) / samples) if samples else 0.0
    return last - accuracies[-3] > noise


K = TypeVar("K")  # a trial's key (too_short)


def too_short(ended: Mapping[K, tuple[Sequence[float], int | None]]) -> list[K]:
    """The trials still rising at their end (``still_rising``) where the trials that ran all their
    iterations (``ended``: each one's accuracies by report, and the samples each accuracy was
    measured on where known) were too short for the data: at least two, and at least half of them,
    still rising; [] where they were not. On the shapes (docs/search.md) 12 of 13 such trials ended at
    accuracy 0.35-0.49 after 1200 iterations; run to 2400, those that had ended at 0.44-0.48 reached
    0.57-0.72."""
    rising = [key for key, (accuracies, samples) in ended.items() if still_rising(accuracies, samples)]
    return rising if len(rising) >= 2 and 2 * len(rising) >= len(ended) else []
