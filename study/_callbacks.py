"""Driver-side bookkeeping of a study's trials: their stop reasons, and the study in Optuna's terms.

The searcher's own Optuna study lives in memory and is checkpointed by Tune with the rest of
the experiment, which is what lets a killed driver resume. For optuna-dashboard, and for anyone
who wants the study in Optuna's own terms, the driver also keeps an Optuna store beside the
trial folders: a journal (``optuna.log``) and a file-system artifact store (``optuna_artifacts/``).

How a Tune trial appears there:
- created RUNNING when Tune starts it, with its searched parameters, its real start time, and
  whether it is one of the paper's baselines or a reference point (user attributes); a trial that
  goes on from another's end ([study] lengthen) has that trial's Tune id as ``continues``;
- one intermediate value per report, at the report's training iteration, of the study's metric
  (named: ``study.metric_names``); single-objective studies only, as Optuna allows;
- each report's sample grid as an artifact of the trial (optuna-dashboard shows the faces);
- under PBT, each change of its config (an exploit and explore) appended to the user attribute
  ``config_changes`` as it happens, and its params set to the config it trains with now (at the
  end: the config it ended with, as its params.json);
- finished when Tune ends it, with the state Tune agrees on (COMPLETE, PRUNED for ASHA and the
  collapse stoppers, FAIL for an error), the real end time and the stop reason.
A resumed driver finds its trials by their Tune trial id (no duplicates); a trial the journal
holds as RUNNING that the resumed Tune does not know (started after Tune's last save of the
experiment) is ended FAIL as interrupted. The study is created once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
import optuna.storages.journal
from optuna.trial import FrozenTrial, TrialState
from ray.tune import Callback
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

from study._stopping import StopLedger
from study.spec import StudySpec
from trainable.config import PAPER_PRESETS
from trainable.errors import UserError
from trainable.experiment import (ARTIFACTS_DIR, COMPLETED, CONFIG_CHANGE, CONTINUES, DIVERSITY_MEAN, EARLY, ERROR, GRID,
                                  INTERRUPTED, JOURNAL_FILE, PROGRESS_FILE, RESULT_FILE, SCORE, STOP_REASON,
                                  append_whole, read_starts, record_start, write_stop,
                                  write_text_atomic)
from trainable.tune_adapter import PENALTY, log_timing

TUNE_TRIAL_ID = "tune_trial_id"  # the user attribute that ties an Optuna trial to its Tune trial
CONFIG_CHANGES = "config_changes"  # the user attribute listing a PBT trial's config changes


class WholeRecordsJournal(optuna.storages.journal.JournalFileBackend):
    """Optuna's journal file, never left with half a record. Optuna appends a record with one
    buffered write: on a full disk part of it reached the file, the next driver's first record was
    joined onto that half line, and neither this tool nor Optuna could read the store again
    (JSONDecodeError). Here a failed append is cut off again before the error goes on, and a torn
    last line (an older version's, a machine that died mid-write) is cut off on opening."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path)
        with open(file_path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size:
                handle.seek(max(0, size - 65536))
                tail = handle.read()
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    handle.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self._lock.acquire()
        try:
            append_whole(self._file_path, data)
        finally:
            self._lock.release()


def journal_storage(experiment_dir: str | Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(WholeRecordsJournal(str(Path(experiment_dir) / JOURNAL_FILE)))


class OptunaStore:
    """The study's Optuna journal and artifact store, written by the driver only."""

    def __init__(self, experiment_dir: str | Path, spec: StudySpec, study_name: str) -> None:
        from optuna.artifacts import FileSystemArtifactStore

        self.spec = spec
        self.storage = journal_storage(experiment_dir)
        artifacts = Path(experiment_dir) / ARTIFACTS_DIR
        artifacts.mkdir(parents=True, exist_ok=True)
        self.artifacts = FileSystemArtifactStore(str(artifacts))
        try:
            self.study_id = self.storage.get_study_id_from_name(study_name)
        except KeyError:  # the first driver of this study: its one create-study record
            directions = ["minimize", "maximize"] if spec.multi_objective else ["minimize"]
            study = optuna.create_study(storage=self.storage, study_name=study_name, directions=directions)
            with warnings.catch_warnings():  # metric names are "experimental" since Optuna 3.2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([spec.metric, DIVERSITY_MEAN] if spec.multi_objective else [spec.metric])
            study.set_user_attr("baselines", list(spec.baselines))
            self.study_id = study._study_id
        self.ids = {t.user_attrs[TUNE_TRIAL_ID]: t._trial_id
                    for t in self.storage.get_all_trials(self.study_id, deepcopy=False) if TUNE_TRIAL_ID in t.user_attrs}
        self.distributions = spec.distributions()

    def baseline(self, config: dict[str, Any]) -> str | None:
        return self.spec.baseline_of(config)

    def start(self, tune_trial_id: str, config: dict[str, Any]) -> int:
        """The trial's Optuna id: created RUNNING now, or the one a previous driver created."""
        if tune_trial_id in self.ids:
            return self.ids[tune_trial_id]
        params = {key: config[key] for key in self.spec.search if key in config}
        attrs: dict[str, Any] = {TUNE_TRIAL_ID: tune_trial_id}
        baseline = self.baseline(config)
        if baseline is not None:
            attrs.update(baseline=baseline, reference="paper" if baseline in PAPER_PRESETS else "remedy recipe")
        if isinstance(config.get(CONTINUES), dict):  # it goes on from that trial's end ([study] lengthen)
            attrs[CONTINUES] = config[CONTINUES].get("trial")
        template = optuna.trial.create_trial(
            state=TrialState.RUNNING, params=params, user_attrs=attrs,
            distributions={key: dist for key, dist in self.distributions.items() if key in params})
        template.datetime_start = datetime.now(timezone.utc)
        self.ids[tune_trial_id] = self.storage.create_new_trial(self.study_id, template_trial=template)
        return self.ids[tune_trial_id]

    def trial(self, trial_id: int) -> FrozenTrial:
        """The trial as the journal holds it now (each read syncs with the journal file)."""
        return self.storage.get_trial(trial_id)

    def report(self, frozen: FrozenTrial, step: int, value: float) -> None:
        if not self.spec.multi_objective and not frozen.state.is_finished():
            self.storage.set_trial_intermediate_value(frozen._trial_id, step, value)

    def upload_grids(self, frozen: FrozenTrial, grids: list[str], read: Callable[[str], bytes | None]) -> None:
        """Each grid (a path relative to the trial folder) as an artifact of the trial, once."""
        from optuna.artifacts import get_all_artifact_meta, upload_artifact

        have = {meta.filename for meta in get_all_artifact_meta(frozen, storage=self.storage)}
        for grid in grids:
            name = posixpath.basename(grid)
            if name in have:
                continue
            data = read(grid)
            if data is None:  # not synced to the study's storage yet: the next report or the end uploads it
                continue
            with tempfile.TemporaryDirectory() as directory:
                path = Path(directory) / name
                path.write_bytes(data)
                upload_artifact(artifact_store=self.artifacts, file_path=str(path), study_or_trial=frozen,
                                storage=self.storage)
            have.add(name)

    def set_params(self, trial_id: int, config: dict[str, Any]) -> None:
        """The trial's searched params as ``config`` holds them now (PBT changes them mid-training)."""
        current = self.trial(trial_id).params
        for key, distribution in self.distributions.items():
            if key in config and key in current and config[key] != current[key]:
                try:
                    internal = distribution.to_internal_repr(config[key])
                except ValueError:  # outside the space (PBT clips to it; a choice list holds its values)
                    continue
                self.storage.set_trial_param(trial_id, key, internal, distribution)

    def add_config_change(self, trial_id: int, change: dict[str, Any]) -> None:
        """Append a config change (PBT) to the trial's ``config_changes``, once (a resumed trial may report it again)."""
        change = json.loads(json.dumps(change))  # as the journal holds it (lists, not tuples)
        changes = list(self.trial(trial_id).user_attrs.get(CONFIG_CHANGES, []))
        if change not in changes:
            self.storage.set_trial_user_attr(trial_id, CONFIG_CHANGES, [*changes, change])

    def finish(self, trial_id: int, state: TrialState, values: list[float] | None, attrs: dict[str, Any]) -> None:
        if self.trial(trial_id).state.is_finished():
            return  # a resumed driver sees completions again
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        self.storage.set_trial_state_values(trial_id, state, values)

    def end_lost(self, known: set[str]) -> None:
        """RUNNING trials no Tune trial of this driver knows: their driver was killed before Tune
        saved them, and they never finish; end them as interrupted."""
        for tune_trial_id, trial_id in self.ids.items():
            if tune_trial_id not in known and not self.trial(trial_id).state.is_finished():
                self.finish(trial_id, TrialState.FAIL, None, {STOP_REASON: INTERRUPTED, "evidence":
                            "its driver was killed before Tune saved the trial; Tune does not resume it"})


def staging_scratch(trial) -> Path:
    """Where the driver's atomic writes into a trial's staging folder keep their temporary file: the
    folder above Tune's driver_artifacts/ (Ray documents that layout), which the background upload
    does not copy. In the folder itself the upload can list the temporary file and then fail on it,
    renamed away (seen once in CI: a FileNotFoundError and a failed upload of the whole study)."""
    return Path(trial.local_experiment_path).parent


class _KeepsItsRows:
    """Tune's result loggers, each trial's rows kept once and whole.

    When a trial starts again with a checkpoint (a retry, a PBT exploit, a paused trial going on),
    Tune's loggers copy its file from the storage over the driver's staging copy they append to,
    and the storage lags the staging copy (an upload of the whole staging folder runs in the
    background): reports were lost (measured: 4 of 4 synchronous PB2 runs at perturbation interval
    1; 2 of 5 killed-and-resumed PBT studies with an upload before the restore, 0 of 12 runs with
    this). The staging copy is the truth while this driver lives; only a driver that has none (a
    resumed study's) restores it.

    A trial that goes on from a checkpoint older than its last report (a retry that fell back past a
    damaged checkpoint, a resumed study's trial whose last checkpoint the driver never recorded)
    reports those iterations again: the rows it trains again replace the abandoned ones (which were
    written twice, with the same values and other timestamps)."""

    FILE: str

    def _restore_from_remote(self, file_name: str, trial) -> None:
        if not Path(trial.local_path, file_name).exists():
            super()._restore_from_remote(file_name, trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        if trial not in self._trial_files:
            self._open(trial)
        reached = result.get("iteration")
        if isinstance(reached, int):
            path = Path(trial.local_path, self.FILE)
            kept, dropped = self._rows_before(path, reached)
            if dropped:
                self._trial_files[trial].close()
                write_text_atomic(path, kept, staging_scratch(trial))
                self._open(trial)
        super().log_trial_result(iteration, trial, result)


class StudyJsonLogger(_KeepsItsRows, JsonLoggerCallback):
    """Tune's result.json logger, keeping its rows (given to Tune, it replaces Tune's own)."""

    FILE = RESULT_FILE

    def _open(self, trial) -> None:
        self.log_trial_start(trial)

    @staticmethod
    def _rows_before(path: Path, reached: int) -> tuple[str, bool]:
        """The file's text without the rows at or past ``reached``, and whether there were any."""
        kept, dropped = [], False
        for line in path.read_text().splitlines(keepends=True) if path.exists() else []:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short: kept, as the readers skip it
                row = None
            later = isinstance(row, dict) and isinstance(row.get("iteration"), int) and row["iteration"] >= reached
            dropped |= later
            if not later:
                kept.append(line if line.endswith("\n") else line + "\n")
        return "".join(kept), dropped


class StudyCSVLogger(_KeepsItsRows, CSVLoggerCallback):
    """Tune's progress.csv logger, keeping its rows (given to Tune, it replaces Tune's own)."""

    FILE = PROGRESS_FILE

    def _open(self, trial) -> None:
        import csv

        writer = self._trial_csv.get(trial)
        self._setup_trial(trial)
        if writer is not None:  # reopened: the rows go on under the header's columns
            self._trial_csv[trial] = csv.DictWriter(self._trial_files[trial], writer.fieldnames)

    @staticmethod
    def _rows_before(path: Path, reached: int) -> tuple[str, bool]:
        import csv
        import io

        if not path.exists():
            return "", False
        lines = path.read_text().splitlines(keepends=True)
        if not lines:
            return "", False
        column = next(csv.reader([lines[0]])).index("iteration") if "iteration" in lines[0] else None
        kept, dropped = [lines[0]], False
        for line in lines[1:]:
            cells = next(csv.reader(io.StringIO(line)), [])
            later = column is not None and len(cells) > column and cells[column].isdigit() and int(cells[column]) >= reached
            dropped |= later
            if not later:
                kept.append(line)
        return "".join(kept), dropped


class StudyTBXLogger(TBXLoggerCallback):
    """Tune's TensorBoard logger (event files in each trial folder), stepped by the training
    iteration rather than the report count, and without the values TensorBoard cannot show: a
    report's freeze events, a list of records, which Tune's own warned of on the user's terminal
    ("You are trying to log an invalid value ... via TBXLoggerCallback!")."""

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        shown = {key: value for key, value in result.items()
                 if not (isinstance(value, list) and any(isinstance(item, (dict, list, str)) for item in value))}
        if isinstance(result.get("iteration"), int):
            shown["timesteps_total"] = result["iteration"]  # Tune's TensorBoard step, where set
        super().log_trial_result(iteration, trial, shown)


def result_loggers() -> list[Callback]:
    """The study's result.json, progress.csv and (where tensorboardX is installed, as ray[tune]
    installs it) TensorBoard loggers; given to Tune, they replace its own."""
    loggers: list[Callback] = [StudyJsonLogger(), StudyCSVLogger()]
    try:
        loggers.append(StudyTBXLogger())
    except ImportError:
        pass
    return loggers


class StudyCallback(Callback):
    def __init__(self, experiment_dir: str | Path, spec: StudySpec, study_name: str) -> None:
        self.experiment_dir = str(experiment_dir)
        self.spec = spec
        self.study_name = study_name
        self._store: OptunaStore | None = None
        self._grids: dict[str, list[str]] = {}  # the grids each trial reported to this driver
        self._started: dict[str, str | None] | None = None  # trial id -> the baseline it started as

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; the store is opened anew by each driver.
        return {**self.__dict__, "_store": None, "_grids": {}, "_started": None}

    def _record_start(self, trial) -> None:
        """Which baseline the trial started as, once (a restarted or resumed trial is not recorded
        again: under PBT it may restart with another trial's config, a baseline's included)."""
        if self._started is None:
            self._started = read_starts(self.experiment_dir)
        if trial.trial_id not in self._started:
            self._started[trial.trial_id] = self.store.baseline(trial.config)
            record_start(self.experiment_dir, trial.trial_id, self._started[trial.trial_id])

    @property
    def store(self) -> OptunaStore:
        if self._store is None:
            self._store = OptunaStore(self.experiment_dir, self.spec, self.study_name)
        return self._store

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A record that cannot be written (a full disk, a file system gone read-only) ends the study in
        one line, its records whole (each append is whole or cut off again), so that it resumes
        once there is room."""
        try:
            yield
        except OSError as exc:
            raise UserError(f"cannot write the study's records in {self.experiment_dir} "
                            f"({exc.strerror or type(exc).__name__}); make room, then continue it with: "
                            f"cgan-study study resume {self.study_name}") from None

    # With $CGAN_STUDY_TIMINGS set, each call is logged beside the trials' own timings, so that
    # benchmarks/study_overhead.py sees when the driver learnt of an event and what this callback cost.

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        log_timing(trial.trial_id, "driver_started")
        with self._writing():
            self._on_trial_start(trial, trials)

    def _on_trial_start(self, trial, trials: list) -> None:
        if self._store is None:  # the first trial this driver starts: end the lost ones of a killed driver
            self.store.end_lost({t.trial_id for t in trials})
        self._record_start(trial)
        self.store.start(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        log_timing(trial.trial_id, "driver_result")
        with self._writing():
            self._on_trial_result(trial, result)

    def on_checkpoint(self, iteration: int, trials: list, trial, checkpoint, **info) -> None:
        log_timing(trial.trial_id, "driver_checkpoint")

    def _on_trial_result(self, trial, result: dict) -> None:
        if result.get("done"):
            # The stopper or ASHA decided on this very result (before the callbacks run): say so in it,
            # so the last reported result of every trial carries its stop reason (Tune's result.json,
            # progress.csv and ExperimentAnalysis). Tune lets callbacks change the result in place.
            entry = StopLedger(self.experiment_dir).get(trial.trial_id)
            if entry is not None:
                result[STOP_REASON] = entry[STOP_REASON]
        trial_id = self.store.start(trial.trial_id, trial.config)
        if isinstance(result.get(CONFIG_CHANGE), dict):
            self.store.add_config_change(trial_id, result[CONFIG_CHANGE])
            self.store.set_params(trial_id, trial.config)
        frozen = self.store.trial(trial_id)  # read once per report: the metric and the grid need its state
        if isinstance(result.get("iteration"), int):
            self.store.report(frozen, result["iteration"], float(result[SCORE]))
        grids = self._grids.setdefault(trial.trial_id, [])
        if isinstance(result.get(GRID), str):
            grids.append(result[GRID])
        self.store.upload_grids(frozen, grids, _reader(trial))

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        log_timing(trial.trial_id, "driver_complete")
        started = time.perf_counter()
        with self._writing():
            self._finish(trial, error=None)
        log_timing(trial.trial_id, "driver_callback", s=time.perf_counter() - started)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        with self._writing():
            self._finish(trial, error=str(getattr(trial, "error_message", None) or "the trial raised"))

    def _finish(self, trial, error: str | None) -> None:
        ledger = StopLedger(self.experiment_dir)
        if error is not None:
            ledger.record(trial.trial_id, ERROR, error.strip().splitlines()[-1][:2000] if error.strip() else "")
        last = trial.last_result or {}
        if error is None and last.get(STOP_REASON) != COMPLETED:
            # Ended before the loop's last report said "completed": a stopper's reason stands (the
            # ledger keeps the first), else Tune ended it (as ray-project/ray#57906 did under PBT).
            # Said so, never passed off as completed.
            ledger.record(trial.trial_id, ERROR, f"Tune ended the trial at iteration {last.get('iteration')}, before "
                                                 f"its last report, and recorded no reason", last.get("iteration"))
        entry = ledger.get(trial.trial_id) or {STOP_REASON: COMPLETED, "evidence": "", "iteration": None}
        record = {"trial_id": trial.trial_id, STOP_REASON: entry[STOP_REASON], "evidence": entry["evidence"],
                  "iteration": last.get("iteration"), "score": last.get(SCORE)}
        trial_dir = Path(trial.local_path) if getattr(trial, "local_path", None) else None
        if trial_dir is not None and trial_dir.exists():
            write_stop(trial_dir, record, staging_scratch(trial))
        self._mirror(trial, record)

    def _mirror(self, trial, record: dict) -> None:
        trial_id = self.store.start(trial.trial_id, trial.config)
        reason = record[STOP_REASON]
        state = TrialState.FAIL if reason == ERROR else TrialState.PRUNED if reason in EARLY else TrialState.COMPLETE
        values = None
        last = trial.last_result or {}
        if state == TrialState.COMPLETE:
            values = [float(last.get(SCORE, PENALTY))]
            if self.spec.multi_objective:
                diversity = last.get(DIVERSITY_MEAN)
                values.append(float(diversity) if isinstance(diversity, (int, float)) and math.isfinite(diversity) else 0.0)
        self.store.upload_grids(self.store.trial(trial_id), self._grids.get(trial.trial_id, []), _reader(trial))
        self.store.set_params(trial_id, trial.config)
        self.store.finish(trial_id, state, values, {STOP_REASON: reason, "evidence": record["evidence"],
                                                    "iteration": record["iteration"]})


def _reader(trial) -> Callable[[str], bytes | None]:
    """Reads a file of the trial's folder in the study's storage (local or remote), None if absent."""
    def read(relative: str) -> bytes | None:
        filesystem = trial.storage.storage_filesystem
        try:
            with filesystem.open_input_stream(posixpath.join(trial.path, relative)) as stream:
                return stream.read()
        except (FileNotFoundError, OSError):
            return None
    return read
