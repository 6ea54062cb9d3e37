"""Study overhead: wall time of a study of N trials at concurrency C against the same trials'
compute run without Ray, and where the difference goes.

All trials share one configuration, V0's, and differ only in their seed (the study starts no
configuration twice; no ASHA or collapse stop), so "the same trials" are that one trial
repeated. References, timed in this run: one trial alone (steps and the same evaluations, 1
thread, as a study trial gets 1 CPU: torch's and numpy's BLAS, as Ray sets OMP_NUM_THREADS=1
for it), and the N trials in C plain processes at once (each process runs its share one after
the other; only training and evaluation are timed, so this is the compute makespan the hardware
gives without Ray; and the same processes from their start to their end, Python, torch, data
and judge loading included, which is what a hand-written driver would take), run before the
study and again after it (the ratios use the mean of the two; their difference is the shared
machine's drift, printed). The study's breakdown of its wall time is printed from real
timings: the driver's calls (timed around ray.init, the judge, the data and judge through the
object store, Tuner.fit, ray.shutdown), the timing log ($CGAN_STUDY_TIMINGS) of each trial (worker
start, building the trainer, each report's grid, checkpoint save and tune.report), the
driver's Tune callbacks (when a trial starts, reports, checkpoints and ends), Tune's
experiment-state saves, and the CPU seconds each Ray process used (sampled from /proc).

    python benchmarks/study_overhead.py [--trials 6] [--iterations 400]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

import torch

from study.runner import environment, run_study
from study.spec import load_spec
from trainable.data import builtin_dataset
from trainable.judge import load_or_train_judge
from trainable.loop import train
from trainable.space import Choice
from trainable.training import Trainer
from trainable.tune_adapter import TIMINGS_ENV
from train_speed import ONE_THREAD  # benchmarks/, the folder Python runs this script from


def _run_alone(config, count: int, results) -> None:
    """``count`` trials one after the other in this process: (train seconds, evaluation seconds) each."""
    torch.set_num_threads(1)
    dataset = builtin_dataset()
    judge, _ = load_or_train_judge(dataset)
    for _ in range(count):
        trainer = Trainer(config, dataset, judge)
        evaluations = []
        start = time.perf_counter()
        train(trainer, lambda row, grid, t: evaluations.append(row["eval_s"]), stop_on_collapse=False)
        results.put((time.perf_counter() - start, sum(evaluations)))


def _plain(config, processes: int, per_process: int) -> list[list[tuple[float, float]]]:
    spawn = multiprocessing.get_context("spawn")
    queues = [spawn.Queue() for _ in range(processes)]
    workers = [spawn.Process(target=_run_alone, args=(config, per_process, q)) for q in queues]
    # One thread each, as Ray gives a 1-CPU trial (OMP_NUM_THREADS=1): numpy's BLAS would start a
    # thread per core in each process, and two processes at once then evaluated 4-5x slower
    # (6 evaluations: 2.1-3.4 s against 0.55-0.65 s, measured), a handicap that is not Ray's gain.
    with environment(**ONE_THREAD):
        for worker in workers:
            worker.start()
    runs = [[q.get() for _ in range(per_process)] for q in queues]
    for worker in workers:
        worker.join()
    return runs


@dataclasses.dataclass(frozen=True)
class _Reference:
    makespan: float  # compute seconds of the slowest plain process
    total: float  # from starting the processes to their end
    compute: float  # training and evaluation seconds of all trials
    evaluation: float  # of which evaluations


def _reference(config, concurrency: int, trials: int, alone: float, label: str = "") -> _Reference:
    started = time.perf_counter()
    runs = _plain(config, concurrency, trials // concurrency)
    reference = _Reference(makespan=max(sum(seconds for seconds, _ in run) for run in runs),
                           total=time.perf_counter() - started,
                           compute=sum(seconds for run in runs for seconds, _ in run),
                           evaluation=sum(evaluation for run in runs for _, evaluation in run))
    print(f"{label}{trials} trials in {concurrency} plain processes at once: {reference.makespan:.1f} s of compute for "
          f"the slowest process, {reference.compute / trials:.1f} s a trial (hardware contention "
          f"{reference.compute / trials / alone:.2f}x); {reference.total:.1f} s from starting the processes to "
          f"their end (each starts Python, imports torch, loads the data and the judge)", flush=True)
    return reference


class _Timer:
    """Wraps callables in place and adds up their wall time by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self.spans: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                end = time.time()
                self.seconds[label] += end - start
                self.calls[label] += 1
                self.spans[label].append((start, end))

        setattr(owner, name, timed)


class _CpuSampler(threading.Thread):
    """CPU seconds (user + system) of this process and every process below it, sampled from /proc
    every half second, keyed by (pid, start time) so that a reused pid is not confused."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[tuple[int, int], tuple[str, float]] = {}
        self.scripts: dict[tuple[int, int], str] = {}
        self.stopping = threading.Event()
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.own_cpu = 0.0  # this sampler's own CPU seconds, counted in the driver's

    def sample(self) -> None:
        table = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                name = text[text.index("(") + 1:text.rindex(")")]
                fields = text.rsplit(")", 1)[1].split()
            except (OSError, ValueError):
                continue
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[19]), name,
                                            (int(fields[11]) + int(fields[12])) / self.ticks)
        children = collections.defaultdict(list)
        for pid, (parent, *_) in table.items():
            children[parent].append(pid)
        todo = [os.getpid()]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            _, started, name, cpu = table[pid]
            if name.startswith("python"):  # Ray's monitors are Python scripts: name them
                if (pid, started) not in self.scripts:
                    self.scripts[(pid, started)] = self._script(pid) or name
                name = self.scripts[(pid, started)]
            self.seen[(pid, started)] = (name, cpu)

    @staticmethod
    def _script(pid: int) -> str:
        """The script a Python process runs (log_monitor.py, monitor.py), or ''."""
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return ""
        scripts = [arg.decode(errors="replace") for arg in args if arg.endswith(b".py")]
        return os.path.basename(scripts[0]) if scripts else ""

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            self.sample()
            self.own_cpu = time.thread_time()

    def stop(self) -> None:
        self.sample()
        self.stopping.set()
        self.join()


def _instrument(timer: _Timer) -> None:
    """Time the driver's calls (when Tune starts a trial, the driver learns of a result or a
    checkpoint and sees a trial end, the study's callback logs itself in $CGAN_STUDY_TIMINGS)."""
    import ray
    from ray import tune
    from ray.tune.execution import experiment_state

    import trainable.judge
    import trainable.local

    timer.wrap(ray, "init", "ray.init")
    timer.wrap(ray, "shutdown", "ray.shutdown")
    timer.wrap(trainable.judge, "load_or_train_judge", "judge load (cached)")
    timer.wrap(trainable.local, "load_data", "data load")  # the study's, read when its Tuner is built
    timer.wrap(tune, "with_parameters", "data + judge into the object store")
    timer.wrap(tune.Tuner, "fit", "Tuner.fit")
    timer.wrap(experiment_state._ExperimentCheckpointManager, "sync_up_experiment_state",
               "Tune experiment-state saves")


# The study callback's events in the timings log, as _per_trial names them.
_DRIVER_EVENTS = {"driver_started": "started", "driver_result": "results", "driver_checkpoint": "checkpoints",
                  "driver_complete": "complete"}


def _per_trial(log: list[dict]) -> dict[str, dict]:
    trials: dict[str, dict] = collections.defaultdict(lambda: {"reports": [], "results": [], "checkpoints": []})
    for entry in log:
        trial = trials[entry["trial"]]
        if entry["event"] == "report":
            trial["reports"].append(entry)
        elif entry["event"] == "driver_callback":
            trial["callback_s"] = entry["s"]
        elif entry["event"] in _DRIVER_EVENTS:
            key = _DRIVER_EVENTS[entry["event"]]
            if key in ("results", "checkpoints"):
                trial[key].append(entry["time"])
            else:
                trial[key] = entry["time"]
        else:
            trial[entry["event"]] = entry
    return trials


def _breakdown(*, wall: float, timer: _Timer, trials: dict[str, dict], sampler: _CpuSampler,
               concurrency: int, plain_compute: float, plain_eval: float) -> None:
    fit = timer.seconds["Tuner.fit"]
    fit_start, fit_end = timer.spans["Tuner.fit"][0]
    print(f"\nwhere the study's {wall:.1f} s go (driver calls, s):")
    before = 0.0
    for label in ("ray.init", "data load", "judge load (cached)", "data + judge into the object store"):
        print(f"  {label:<44} {timer.seconds[label]:6.2f}")
        before += timer.seconds[label]
    rest = wall - fit - timer.seconds["ray.shutdown"] - before
    print(f"  {'Tuner.fit':<44} {fit:6.2f}")
    print(f"  {'ray.shutdown':<44} {timer.seconds['ray.shutdown']:6.2f}")
    print(f"  {'the rest (study folder, Tuner, Optuna setup)':<44} {rest:6.2f}")
    _slots(trials, concurrency, fit, fit_start, fit_end, plain_compute, plain_eval)
    _cpu_by_process(trials, sampler, concurrency, wall, timer)


def _slots(trials: dict[str, dict], concurrency: int, fit: float, fit_start: float, fit_end: float,
           plain_compute: float, plain_eval: float) -> None:
    """Where the trials' CPU slots go during Tuner.fit, against the same compute in plain processes."""
    slots = collections.Counter()
    workers: set[int] = set()
    workers_reused = 0
    reports = 0
    # Each trial takes the CPU slot the earliest finished trial freed: the gap in between is the
    # next trial's actor being started (a worker process, the trainable's class, its setup).
    free = [fit_start] * concurrency
    for trial in sorted(trials.values(), key=lambda trial: trial["started"]):
        free.sort()
        label = "trial actor started (a worker, the trainable class, Tune's setup) or reset for reuse"
        slots[label] += trial["started"] - free.pop(0)
        free.append(trial["complete"])
        entered, ready, ended = trial["entered"], trial["ready"]["time"], trial["ended"]["time"]
        started, complete = trial["started"], trial["complete"]
        workers_reused += entered["pid"] in workers
        workers.add(entered["pid"])
        slots["actor running -> function entered (first train() call, thread)"] += entered["at"] - started
        slots["trainer built (imports, data + judge from the object store, model)"] += ready - entered["at"]
        in_report = 0.0
        for index, report in enumerate(trial["reports"]):
            reports += 1
            slots["grid written (PNG + thumbnail)"] += report["grid_s"]
            slots["checkpoint saved to a temporary folder"] += report["save_s"]
            # tune.report: copy the checkpoint to storage and sync the grids, hand the result to the
            # driver, which processes it, asks the actor for the checkpoint and calls train() again.
            report_end = report["time"]
            report_start = report_end - report["report_s"]
            result = trial["results"][index] if index < len(trial["results"]) else report_end
            checkpoint = trial["checkpoints"][index] if index < len(trial["checkpoints"]) else result
            slots["tune.report: checkpoint copy + artifact sync, result to the driver"] += \
                max(0.0, result - report_start)
            slots["tune.report: driver handles the result, fetches the checkpoint"] += max(0.0, checkpoint - result)
            slots["tune.report: the next train() call reaches the trial"] += \
                max(0.0, report_end - max(result, checkpoint))
            in_report += report["grid_s"] + report["save_s"] + report["report_s"]
        slots["training steps + evaluations"] += ended - ready - in_report
        slots["  of which evaluations"] += sum(r["eval_s"] for r in trial["reports"])
        slots["function returned -> the driver has ended the trial (Optuna journal included)"] += complete - ended
        slots["  of which the Optuna journal callback"] += trial.get("callback_s", 0.0)
    slots["a slot's last trial ended before the study's last trial (uneven ends)"] += \
        sum(max(free) - end for end in free)
    slots["the study's last trial ended -> Tuner.fit returned"] += concurrency * (fit_end - max(free))
    unaccounted = concurrency * fit - sum(value for key, value in slots.items() if not key.startswith("  "))
    print(f"\nwhere the trials' CPU slots go during Tuner.fit ({concurrency} slots x {fit:.1f} s, "
          f"{len(trials)} trials, {reports} reports, {workers_reused} on the worker of an earlier trial):")
    print(f"  {'':<84} {'slot-s':>7} {'wall s':>7}")
    for label, seconds in slots.items():
        print(f"  {label:<84} {seconds:7.2f} {seconds / concurrency:7.2f}")
    if abs(unaccounted) > 0.05:
        print(f"  {'unaccounted':<84} {unaccounted:7.2f} {unaccounted / concurrency:7.2f}")
    print(f"  {'the same trials in plain processes: training steps + evaluations':<84} "
          f"{plain_compute:7.2f} {plain_compute / concurrency:7.2f}")
    print(f"  {'  of which evaluations':<84} {plain_eval:7.2f} {plain_eval / concurrency:7.2f}")
    compute = slots["training steps + evaluations"]
    print(f"  trial compute under Ray vs in plain processes: {compute / plain_compute:.3f}x "
          f"({(compute - plain_compute) / concurrency:+.2f} s of wall)")


def _cpu_by_process(trials: dict[str, dict], sampler: _CpuSampler, concurrency: int, wall: float,
                    timer: _Timer) -> None:
    trial_pids = {trial["entered"]["pid"] for trial in trials.values()}
    cpu = collections.Counter()
    for (pid, _), (name, seconds) in sampler.seen.items():
        if pid == os.getpid():
            kind = "the driver (this process: Tune's controller, Optuna, callbacks, reporter)"
        elif pid in trial_pids:
            kind = "trial workers (their training included)"
        elif name in ("raylet", "gcs_server"):
            kind = name
        elif name in ("log_monitor.py", "monitor.py"):
            kind = f"Ray's {name}"
        elif name.startswith("ray::IDLE") or name.startswith("default_worker") or name.startswith("python") \
                or name.endswith("worker.py"):
            kind = "Ray workers that ran no trial"
        else:
            kind = f"other Ray processes ({name})" if len(name) < 20 else "other Ray processes"
        cpu[kind] += seconds
    print(f"\nCPU seconds by process over the whole study ({concurrency} CPUs x {wall:.1f} s = "
          f"{concurrency * wall:.1f} CPU-s available):")
    for kind, seconds in cpu.most_common():
        print(f"  {kind:<76} {seconds:7.2f}")
    label = "  of the driver's, this benchmark's /proc sampler"
    print(f"  {label:<76} {sampler.own_cpu:7.2f}")
    print(f"  {'Tune experiment-state saves on the driver (wall)':<76} "
          f"{timer.seconds['Tune experiment-state saves']:7.2f} in {timer.calls['Tune experiment-state saves']} saves")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=400)
    args = parser.parse_args()
    concurrency = os.cpu_count() or 1
    if args.iterations < 4:
        parser.error("--iterations must be at least 4 (a trial reports 4 times)")
    if args.trials % concurrency:
        parser.error(f"--trials must be a multiple of the {concurrency} CPUs (each runs the same share)")
    base = load_spec(samples=args.trials, baselines=["V0"])  # any number of trials: one baseline
    fixed = {**base.fixed, "iterations": args.iterations, "eval_every": args.iterations // 4,
             "collapse_grace": 10**9}
    # V0's configuration for every trial (the baseline included), each with its own seed: the study
    # starts no configuration twice, and a seed changes what is drawn, not how long a step takes.
    point = base.baseline_points()[0]
    fixed.pop("seed", None)
    search = {**{k: Choice((v,)) for k, v in point.items()}, "seed": Choice(tuple(range(args.trials)))}
    spec = dataclasses.replace(base, fixed=fixed, search=search, early_stopping=False)
    load_or_train_judge(builtin_dataset())  # cached before anything is timed
    config = spec.base_config().replace(**{k: v for k, v in point.items() if k in spec.search})

    (alone, alone_eval), = _plain(config, 1, 1)[0]
    print(f"one trial alone (1 thread): {alone:.1f} s for {args.iterations} iterations "
          f"({alone_eval:.1f} s of it evaluations)", flush=True)
    before = _reference(config, concurrency, args.trials, alone)

    timer = _Timer()
    _instrument(timer)
    sampler = _CpuSampler()
    with tempfile.TemporaryDirectory() as storage:
        log = Path(storage) / "timings.jsonl"
        os.environ[TIMINGS_ENV] = str(log)
        sampler.start()
        start = time.perf_counter()
        run_study(spec, name="overhead", storage=str(Path(storage) / "studies"))
        wall = time.perf_counter() - start
        sampler.stop()
        entries = [json.loads(line) for line in log.read_text().splitlines()]
    ran = len({entry["trial"] for entry in entries})
    if ran != args.trials:  # the breakdown and ratios below hold for the trials asked only
        raise SystemExit(f"the study ran {ran} of the {args.trials} trials asked: no figures")
    # The shared machine's speed drifts over minutes (seen: a trial 6 % faster in the reference than
    # alone just before it): the plain processes run again after the study, and the ratios are taken
    # against the mean of the two references.
    after = _reference(config, concurrency, args.trials, alone, label="\nagain, after the study: ")
    print(f"the reference after the study against before: {after.total / before.total:.3f}x from start to end, "
          f"{after.compute / before.compute:.3f}x in compute (the machine's drift; the ratios below use the mean)")
    plain, plain_total, plain_compute, plain_eval = (
        (getattr(before, field) + getattr(after, field)) / 2 for field in ("makespan", "total", "compute", "evaluation"))
    ideal = args.trials * alone / concurrency
    print(f"\nstudy of {args.trials} trials at concurrency {concurrency}: {wall:.1f} s wall "
          f"(Ray start, judge from cache, trials) vs ideal {ideal:.1f} s: overhead ratio {wall / ideal:.2f}")
    print(f"against the same trials run {concurrency} at a time without Ray ({plain:.1f} s): "
          f"ratio {wall / plain:.2f} (what Ray and the study machinery add)")
    print(f"against those {concurrency} processes from their start to their end ({plain_total:.1f} s, what a "
          f"hand-written driver would take): ratio {wall / plain_total:.2f}")
    _breakdown(wall=wall, timer=timer, trials=_per_trial(entries), sampler=sampler,
               concurrency=concurrency, plain_compute=plain_compute, plain_eval=plain_eval)


if __name__ == "__main__":
    main()
