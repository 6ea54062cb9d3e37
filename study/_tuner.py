"""The Tuner of a study: the trainable with its data and judge, searcher, scheduler, stoppers,
callbacks and storage, put together (or restored from the experiment's saved state)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from study._session import Resources
from study.spec import StudySpec
from trainable.experiment import COND_ACCURACY, DIVERSITY_MIN, VERDICT, metric_label, trial_dir_name


def _trainable(spec: StudySpec, study: dict[str, Any], resources: Resources):
    """The function trainable with the data set and the judge through the object store."""
    from ray import tune

    from trainable.judge import load_or_train_judge
    from trainable.local import load_data
    from trainable.tune_adapter import cgan_trainable, start_fusion_server

    dataset = load_data(study["data"])
    # The judge is trained once per study, here on the driver, unless it is already cached.
    judge, trained = load_or_train_judge(dataset, steps=study["judge_steps"], progress=True)
    if trained:
        print(f"judge trained: held-out accuracy {judge.heldout_accuracy:.3f}", file=sys.stderr)
    cas_steps = study["judge_steps"] if spec.final_cas else None
    fusion, gpus = None, resources.gpus
    if spec.fused_trials:
        # One process trains the trials (trainable/fusion_server.py) and takes the GPU, if any, whole;
        # each trial holds its CPUs and waits for its reports from it.
        fusion = start_fusion_server(f"cgan-study-fusion-{study['name']}-{os.getpid()}", dataset, judge,
                                     cas_steps=cas_steps, gpu=gpus > 0)
        if gpus == 0:
            print("note: fused trials on CPUs only: slower than separate trials there (0.6x measured on 2 "
                  "cores, benchmarks/fused_throughput.py); they pay on a GPU", file=sys.stderr)
        gpus = 0
    return tune.with_resources(
        tune.with_parameters(cgan_trainable, dataset=dataset, judge=judge, metric=spec.metric, cas_steps=cas_steps,
                             fusion=fusion),
        {"cpu": resources.cpus, "gpu": gpus})


def build_tuner(spec: StudySpec, study: dict[str, Any], resources: Resources, *, restore: bool,
                warm_start: tuple[Any, ...] = ()):
    # Ray and Optuna are imported only once a study really starts: `study status` needs neither.
    from ray import tune

    from study._callbacks import StudyCallback, result_loggers
    from study._progress import TABLE_EVERY_S, ProgressLines
    from study._search import make_searcher
    from study._stopping import make_scheduler, make_stopper

    trainable = _trainable(spec, study, resources)
    if restore:
        return tune.Tuner.restore(study["storage_uri"], trainable=trainable, resume_unfinished=True,
                                  resume_errored=True)
    experiment_dir = Path(study["experiment_dir"])
    # (a fused trial holds CPUs only: the fusion server takes the GPU)
    per_trial = dataclasses.replace(resources, gpus=0 if spec.fused_trials else resources.gpus)
    search_alg, param_space = make_searcher(spec, experiment_dir, warm_start, storage_uri=study["storage_uri"],
                                            trial_resources=per_trial)
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg,
                                    scheduler=make_scheduler(spec, experiment_dir), num_samples=spec.samples,
                                    trial_dirname_creator=lambda trial: trial_dir_name(trial.trial_id),
                                    trial_name_creator=lambda trial: trial_dir_name(trial.trial_id),
                                    # A finished trial's worker runs the next one: no new process and
                                    # no second import of torch (seconds a trial on a small machine).
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            name=study["name"], storage_path=study["storage"],
            stop=make_stopper(spec, experiment_dir),
            # StudyCallback first: the progress line of an ended trial reads the ledger it wrote.
            callbacks=[StudyCallback(experiment_dir, spec, study["name"]), ProgressLines(spec, str(experiment_dir)),
                       *result_loggers()],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # PBT restores a trial from another's checkpoint of the last perturbation, which that
            # trial may have trained past by an interval before: keep enough of them.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=max(2, spec.perturbation_interval + 2) if spec.population_based else 2),
            # Sample grids are written in the trial's working folder: sync them to storage too.
            sync_config=tune.SyncConfig(sync_artifacts=True),
            progress_reporter=tune.CLIReporter(
                metric_columns={"iteration": "iter", spec.metric: metric_label(spec.metric), COND_ACCURACY: "acc",
                                DIVERSITY_MIN: "div", VERDICT: VERDICT},
                parameter_columns=list(spec.search)[:6], max_report_frequency=TABLE_EVERY_S),
            verbose=1,
        ),
    )
