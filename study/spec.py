"""The study file: what a study searches and what it holds fixed (TOML, edited by the user).

    [study]                    # how the study runs
    samples = 20               # trials, the paper's three baselines included
    metric = "fid_intra"       # primary quality score (lower is better)
    multi_objective = false    # true: also maximise diversity_mean (Optuna multi-objective)
    seed = 0                   # sampler seed
    sampler = "tpe"            # TPE after a space-filling start of startup_trials points; "plain-tpe"
                               # (Optuna's TPESampler with its defaults: 10 random draws) or "random"
    startup_trials = 4         # tpe: the trials before its model (baselines, given points and warm-start
                               # trials count; a Latin hypercube fills the rest)
    budget = 0                 # total training iterations of the study's trials (every report counts): a trial
                               # starts only while the live ones leave room, none once spent; 0: samples limit
    space = "default"          # without [search]: "default" (the paper's axes, learning rates, conditioning) or
                               # "full" (also every other remedy: which remedies matter)
    warm_start = ""            # an earlier study (a name under --storage, or its folder) whose finished
                               # trials the sampler is given before its first draw (study/_warm_start.py)
    early_stopping = true      # the collapse stoppers, and ASHA under scheduler "asha"; false runs
                               # every trial to its end
    lengthen = true            # where no trial has learnt the label yet and the searched trials that ran
                               # all their iterations were mostly still improving at their end, the
                               # trials started from then on run twice as long (once; not under PBT)
    scheduler = "asha"         # or "pbt" (Population Based Training), "pb2" (needs GPy, scikit-learn)
    grace_period = 1           # ASHA: evaluations before a trial may be stopped (the score at the first
                               # predicts the last: docs/search.md)
    reduction_factor = 3       # ASHA
    perturbation_interval = 2  # PBT: evaluations between a trial's exploit/explore steps
    quantile_fraction = 0.25   # PBT: the bottom share of trials takes the top share's weights
    resample_probability = 0.25  # PBT: chance that a mutated field is drawn anew from [search]
    mutate = ["g_lr", "d_lr"]  # PBT: the fields it changes mid-training (default: every searched
                               # field of trainable.config.MUTABLE_FIELDS); their [search] entries
                               # are the values PBT moves them within
    max_failures = 2           # retries of a trial whose worker dies or raises
    cpus_per_trial = 1
    gpus_per_trial = 0         # 0.25: four trials share a GPU
    final_cas = false          # true: each trial that runs to its end reports its generator's
                               # Classification Accuracy Score (trainable/cas.py) in its last row
    fused_trials = false       # true: one process (on the GPU) trains the trials, those of one
                               # architecture fused into one batched model (docs/gpu.md)

    [fixed]                    # config fields every trial gets (any TrainConfig field); a field
                               # fixed here leaves the default [search], and is never in both
    iterations = 20000         # default 1200 with g_filters 32,16,8: minutes on 2 CPU cores
    eval_every = 1000

    [search]                   # config fields searched; each a choice list, a choice table or a range table
    latent_size = [32, 64, 80, 100, 128]
    d_filters = ["8,16,32", "16,32,64", "32,64,128"]
    d_dropout = {low = 0.0, high = 0.5}
    g_beta1 = {low = 0.0, high = 0.9}
    g_lr = {low = 5e-5, high = 2e-3, log = true}
    conditioning = {values = ["concat", "projection"], draw = ["projection"]}

A choice list holds ints, floats or strings ("off" switches a freeze rule off); a choice table
holds them as values, and draw, those the sampler draws (the others only baselines and given
points take); a range is a table with low, high and optional log (float) or step (int). Parameter names are the
config's field names, so a trial's parameters are its config.

Under PBT, ``samples`` is the population: the baselines and given points, then the sampler's
draws (seeded TPE draws its first 10 at random), all started as a population that PBT then
evolves; the searcher does not propose configs mid-run (Ray's PBT refuses a search algorithm).
The paper's baselines are never exploited or mutated (they stay the yardstick), but other
trials may take their weights. ASHA's settings do not apply.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

from trainable.config import (MUTABLE_FIELDS, PAPER_METHOD_FIELDS, PAPER_PRESETS, PRESETS, TrainConfig,
                               param_value, preset_label)
from trainable.errors import ConfigError
from trainable.experiment import FID, FID_INTRA, matches_point, trial_params
from trainable.space import Domain, Range, domain_from_dict, domain_from_toml, space_size

SEARCHABLE_METRICS = (FID_INTRA, FID)
SCHEDULERS = ("asha", "pbt", "pb2")
SAMPLERS = ("tpe", "plain-tpe", "random")
PBT_SETTINGS = ("perturbation_interval", "quantile_fraction", "resample_probability", "mutate")

# The default space: the paper's axes, each wide enough to hold the V0/V1/V2 baselines, and how D is
# told the label. Each choice is the evidence of docs/search.md: with Adam at the paper's 2e-4 no
# configuration learned the label within a few thousand iterations, while 1e-3 to 5e-3 did; of the
# remedies, the projection discriminator (Miyato & Koyama 2018, the conditioning of class-conditional
# GANs since) was the one that helped at these budgets, the others each made FD-intra worse (spectral
# norm, R1, DiffAugment, hinge, least squares: benchmarks/remedies.py), so they wait in the "full" space.
# A ``draw`` narrows what the sampler draws where the real trials of both the built-in set and a
# second one (docs/search.md, "What the sampler draws") learned the label far less often outside it;
# the rest of the field stays a point of the space that the baselines take (V0's, V1's and V2's 2e-4
# rates and concat D); dropout above 0.3 is drawn by the "full" space only.
DEFAULT_SEARCH: dict[str, Any] = {
    "latent_size": [32, 64, 80, 100, 128],
    "d_filters": ["16,32,64", "32,64,128"],  # 8,16,32 learned the label in 0 of 133 trials on both sets
    "d_dropout": {"low": 0.0, "high": 0.5, "draw": [0.0, 0.3]},
    "g_beta1": {"low": 0.0, "high": 0.9, "draw": [0.0, 0.6]},
    "g_beta2": [0.9, 0.99, 0.999],
    "d_beta1": {"low": 0.0, "high": 0.9, "draw": [0.0, 0.6]},
    "d_beta2": [0.9, 0.99, 0.999],
    "normalization": ["[0,1]", "[-1,1]"],
    "freeze_accuracy": ["off", 0.8, 0.9, 0.95, 0.99],
    "freeze_after": ["off", 2000, 5000, 10000, 50000],
    # Uniform, not log-uniform (docs/search.md, "The learning rates"); the paper's 2e-4 is V0's point.
    "g_lr": {"low": 2e-4, "high": 5e-3, "draw": [1e-3, 5e-3]},
    "d_lr": {"low": 2e-4, "high": 5e-3, "draw": [5e-4, 5e-3]},
    # The paper's concat D is a point of the space (V0, V1, V2 run as themselves) that the sampler never
    # draws: 0 of 249 concat trials learned the label on either set (docs/search.md, "Conditioning").
    "conditioning": {"values": ["concat", "projection"], "draw": ["projection"]},
}
# The GAN literature's other remedies for the paper's failures (trainable/config.py cites each); every
# list holds the paper's value first. `space = "full"` searches them beside the default space.
REMEDY_SEARCH: dict[str, Any] = {
    "d_norm": ["batch", "spectral", "none"],
    "g_spectral_norm": [False, True],
    "loss": ["bce", "hinge", "least-squares"],
    "r1_gamma": [0.0, 0.1, 1.0, 10.0],
    "diffaugment": ["off", "translation", "translation,cutout"],
    "g_ema": [0.0, 0.99, 0.999],
    "label_smoothing": [0.0, 0.1, 0.2],
    "instance_noise": [0.0, 0.05, 0.1],
    "minibatch_std": [False, True],
    "d_steps": [1, 2],
}


def _drawn_whole(domain: Any) -> Any:
    """A default-space field with its ``draw`` left out: the sampler draws all of it."""
    if isinstance(domain, dict) and "values" in domain:
        return domain["values"]
    return {key: value for key, value in domain.items() if key != "draw"} if isinstance(domain, dict) else domain


# "full": every field drawn whole, the paper's narrow D too, and the remedies.
SPACES: dict[str, dict[str, Any]] = {"default": DEFAULT_SEARCH, "full": {
    **{key: _drawn_whole(domain) for key, domain in DEFAULT_SEARCH.items()},
    "d_filters": ["8,16,32", "16,32,64", "32,64,128"], **REMEDY_SEARCH}}
# The paper's V0/V1/V2, and the recipe: a reference point of remedies, never the paper's.
DEFAULT_BASELINES = (*PAPER_PRESETS, "recipe")
# The demo's widths and trial length (examples/demo.toml), where the search was measured
# (docs/search.md): about a minute a trial on 2 cores. The label is learnt at 900-1200 iterations
# there (the reference recipe; searched trials from 600), so trials of 800, the default before,
# ended mostly before it.
DEFAULT_FIXED: dict[str, Any] = {
    "g_filters": "32,16,8", "iterations": 1200, "eval_every": 300, "eval_samples_per_class": 50,
    "collapse_grace": 600,
}


@dataclasses.dataclass(frozen=True)
class StudySpec:
    search: dict[str, Domain]
    fixed: dict[str, Any]
    samples: int = 20
    metric: str = FID_INTRA
    multi_objective: bool = False
    seed: int = 0
    grace_period: int = 1
    reduction_factor: int = 3
    max_failures: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    baselines: tuple[str, ...] = PAPER_PRESETS
    sampler: str = "tpe"  # one of SAMPLERS
    startup_trials: int = 4  # tpe: trials before the model (every trial the sampler was told of counts)
    budget: int = 0  # total training iterations; 0: no limit but samples
    warm_start: str = ""  # an earlier study whose finished trials the sampler starts from ("" none)
    space: str = "default"  # the space searched without a [search] section: one of SPACES
    early_stopping: bool = True  # ASHA and the collapse stoppers; false runs every trial to the end
    lengthen: bool = True  # trials too short for the data: those started after run 2x (StudySearcher.length)
    points: tuple[dict[str, Any], ...] = ()  # further points run first, after the baselines (seed re-runs)
    final_cas: bool = False  # CAS at each completed trial's last evaluation (one classifier training each)
    fused_trials: bool = False  # one process trains the trials, those of one architecture fused (trainable/fused.py)
    scheduler: str = "asha"  # "pbt" / "pb2": Population Based Training (Ray's) instead of ASHA
    perturbation_interval: int = 2  # PBT: evaluations between exploit/explore steps
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    mutate: tuple[str, ...] = ()  # PBT: the fields it changes; () = every searched mutable field

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A spec pickled (with a study's searcher) before ``lengthen`` existed: that study ran without it.
        self.__dict__.update({"lengthen": False, **state})

    @property
    def population_based(self) -> bool:
        return self.scheduler in ("pbt", "pb2")

    @property
    def mutations(self) -> dict[str, "Domain"]:
        """PBT's mutations: each mutated field with the [search] domain it moves within."""
        if not self.population_based:
            return {}
        keys = self.mutate or tuple(key for key in self.search if key in MUTABLE_FIELDS)
        return {key: self.search[key] for key in keys}

    def base_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.fixed)

    def expresses(self, name: str) -> bool:
        """Whether this study can run preset ``name`` as itself: each of its values searched, or
        fixed to that value. (The paper's presets may run at the study's fixed widths instead, but
        with the paper's method: ``paper_departures``.)"""
        base = self.base_config()
        preset = TrainConfig.from_dict(PRESETS[name], base=base)
        return all(key in self.search or getattr(preset, key) == getattr(base, key) for key in PRESETS[name])

    def paper_departures(self) -> dict[str, tuple[Any, Any]]:
        """The fields of the paper's method (no remedy, its Adam) that [fixed] sets away from the
        paper's values and the search leaves there: {field: (fixed value, the paper's)}, study form."""
        base, paper = self.base_config(), TrainConfig()  # each default is the paper's behaviour
        return {key: (param_value(getattr(base, key)), param_value(getattr(paper, key))) for key in PAPER_METHOD_FIELDS
                if key not in self.search and getattr(base, key) != getattr(paper, key)}

    def baseline_of(self, config: dict[str, Any]) -> str | None:
        """The baseline whose point a trial's config is (V0, V1, V2, recipe), or None: a searched trial."""
        return next((name for name, point in zip(self.baselines, self._baseline_points)
                     if matches_point(config, point)), None)

    def baseline_points(self) -> list[dict[str, Any]]:
        """The presets as points of this space (points_to_evaluate), each checked to lie in it."""
        return [dict(point) for point in self._baseline_points]

    @functools.cached_property
    def _baseline_points(self) -> tuple[dict[str, Any], ...]:
        # Built once per spec (it is frozen; dataclasses.replace makes a new one): the driver's
        # callback, ASHA, PBT and study.json all ask for them.
        points = []
        for name in self.baselines:
            config = TrainConfig.from_dict(PRESETS[name], base=self.base_config())
            point = {}
            values = trial_params(config)
            for key, domain in self.search.items():
                value = values[key]
                if not domain.contains(value):
                    raise ConfigError(f"baseline {name}: {key}={value!r} lies outside the search space "
                                      f"{domain.describe()}; widen [search].{key} so {preset_label(name)} can run")
                point[key] = value
            points.append(point)
        return tuple(points)

    def start_points(self) -> list[dict[str, Any]]:
        """What the searcher runs before sampling: the baselines, then any given points."""
        return self.baseline_points() + [dict(point) for point in self.points]

    def space_size(self) -> int | None:
        return space_size(self.search)

    @property
    def evaluations(self) -> int:
        """Reports of a trial that runs to its end."""
        return self.base_config().evaluations

    def unjudged_note(self) -> str | None:
        """Where the collapse verdict can never judge a trial that runs to its end, though its grace
        ends within the trial (too few evaluations from collapse_grace on for collapse_patience):
        that, as a sentence; None where it can, where the grace lies past the trial (the verdict
        turned off), or where a searched field decides it."""
        if {"iterations", "eval_every", "collapse_grace", "collapse_patience"} & set(self.search):
            return None
        config = self.base_config()
        reports = {*range(config.eval_every, config.iterations, config.eval_every), config.iterations}
        judged = sum(1 for iteration in reports if iteration >= config.collapse_grace)
        if config.collapse_grace > config.iterations or judged >= config.collapse_patience:
            return None
        return (f"the collapse verdict never judges a trial: it needs {config.collapse_patience} evaluations from "
                f"iteration {config.collapse_grace} on (collapse_patience, collapse_grace), and a trial of "
                f"{config.iterations} iterations evaluated every {config.eval_every} has {judged}; lower "
                f"[fixed] collapse_grace or eval_every to have collapses stopped")

    def distributions(self) -> dict[str, Any]:
        """The search space as Optuna distributions (for trials made outside the searcher)."""
        return {key: domain.distribution() for key, domain in self.search.items()}

    def to_dict(self) -> dict[str, Any]:
        """The spec as study.json holds it."""
        raw = dataclasses.asdict(self)
        raw.update(search={key: domain.to_dict() for key, domain in self.search.items()},
                   baselines=list(self.baselines), points=[dict(point) for point in self.points],
                   mutate=list(self.mutate))
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "StudySpec":
        search = {key: domain_from_dict(value) for key, value in raw["search"].items()}
        # (a study saved before ``lengthen`` ran without it, and resumes so)
        return cls(**{"lengthen": False, **raw, "search": search, "baselines": tuple(raw["baselines"]),
                      "points": tuple(raw.get("points", ())), "mutate": tuple(raw.get("mutate", ()))})


_STUDY_KEYS = {f.name for f in dataclasses.fields(StudySpec)} - {"search", "fixed", "points"}
# The least each whole-number [study] setting may be (max_failures -1: retry without end, as in Ray).
_LEAST = {"samples": 1, "grace_period": 1, "reduction_factor": 2, "max_failures": -1, "perturbation_interval": 1,
          "startup_trials": 0, "budget": 0}


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such study file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a study file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); a study file is TOML") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _check_setting(key: str, value: Any) -> None:
    """A [study] value has its field's type (TOML's: 5 not "5", true not "yes"), checked before Ray starts."""
    kind = typing.get_type_hints(StudySpec)[key]
    kind = typing.get_origin(kind) or kind
    if kind is bool:
        ok, expected = isinstance(value, bool), "true or false (unquoted)"
    elif kind is int:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif kind is float:
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif kind is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
        expected = ('a list of field names like ["g_lr", "d_lr"]' if key == "mutate"
                    else 'a list of preset names like ["V0", "recipe"]')
    else:
        ok, expected = isinstance(value, kind), "a string"
    if not ok:
        raise ConfigError(f"[study].{key}: expected {expected}, got {value!r}")
    if key in _LEAST and value < _LEAST[key]:
        raise ConfigError(f"[study].{key}: {value} is below the least allowed, {_LEAST[key]}")


def _check_paper_method(spec: StudySpec, *, given: bool) -> None:
    """The paper's presets run with the paper's method or not at all: a study whose [fixed] sets a
    remedy or an Adam setting would otherwise run, say, a hinge-loss GAN that every summary and
    dashboard calls "the paper's V0"."""
    paper = [name for name in spec.baselines if name in PAPER_PRESETS]
    departures = spec.paper_departures() if paper else {}
    if not departures:
        return
    sets = ", ".join(f"{key} = {json.dumps(value)}" for key, (value, _) in departures.items())
    theirs = ", ".join(f"{key} = {json.dumps(value)}" for key, (_, value) in departures.items())
    move = (f"move {'it' if len(departures) == 1 else 'them'} from [fixed] to [search] with the paper's "
            f"value{'' if len(departures) == 1 else 's'} among the choices (a [search] section replaces the "
            "default space)")
    if given:
        raise ConfigError(f"[study].baselines: {', '.join(paper)} would not be the paper's here: [fixed] sets {sets} "
                          f"(the paper: {theirs}); {move}, or leave {', '.join(paper)} out")
    raise ConfigError(f"[fixed] sets {sets}, which the paper's baselines did not use (the paper: {theirs}): {move}, "
                      f"or name the baselines to run in [study].baselines (baselines = [] for none)")


def _one_run_per_point(spec: StudySpec, *, given: bool) -> StudySpec:
    """Baselines that are one point of this space run once. V2 is V1 with freeze rules, so where the
    space does not search them the two are the same trial (and V0, V1, V2 all one where it searches
    none of latent size, D filters and dropout): the default list keeps the first of them; a list
    the study file gives is refused in one line, since a name in it would not run as itself."""
    kept: dict[str, dict[str, Any]] = {}
    for name, point in zip(spec.baselines, spec.baseline_points()):
        same = next((earlier for earlier, seen in kept.items() if seen == point), None)
        if same is None:
            kept[name] = point
        elif given:
            differ = sorted(key for key in {**PRESETS[name], **PRESETS[same]}
                            if PRESETS[name].get(key) != PRESETS[same].get(key))
            raise ConfigError(f"[study].baselines: {name} is the same point as {same} in this space (it differs in "
                              f"{', '.join(differ)}, not searched); search {'them' if len(differ) > 1 else 'it'} "
                              f"or leave {name} out")
    return dataclasses.replace(spec, baselines=tuple(kept))


def load_spec(path: str | Path | None = None, **overrides: Any) -> StudySpec:
    """Read a study file (or the defaults), validating every key and value with a clear message."""
    raw = _read_toml(path) if path is not None else {}
    unknown = set(raw) - {"study", "fixed", "search"}
    if unknown:
        raise ConfigError(f"{path}: unknown section [{sorted(unknown)[0]}]; expected [study], [fixed], [search]")
    for section, value in raw.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{section}] must be a table (a [{section}] header and key = value lines)")
    settings = dict(raw.get("study", {}))
    bad = set(settings) - _STUDY_KEYS
    if bad:
        raise ConfigError(f"{path}: unknown key [study].{sorted(bad)[0]}; known: {', '.join(sorted(_STUDY_KEYS))}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    for key, value in settings.items():
        _check_setting(key, value)
    search_raw, fixed = _space_and_fixed(raw, settings)
    search = {key: domain_from_toml(key, value) for key, value in search_raw.items()}
    for key in ("baselines", "mutate"):
        if key in settings:
            settings[key] = tuple(settings[key])
    spec = StudySpec(search=search, fixed=fixed, **settings)
    if "baselines" not in settings:  # the recipe runs wherever the space can express it
        spec = dataclasses.replace(spec, baselines=tuple(name for name in DEFAULT_BASELINES
                                                         if name in PAPER_PRESETS or spec.expresses(name)))
    _check_spec(spec, settings)
    # Fails now, not mid-study, if a baseline lies outside the space.
    spec = _one_run_per_point(spec, given="baselines" in settings)
    if spec.samples < len(spec.baselines):
        raise ConfigError(f"[study].samples: {spec.samples} is fewer than the {len(spec.baselines)} baselines")
    return spec


def _space_and_fixed(raw: dict[str, Any], settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The [search] section (else the named default space, less what [fixed] fixes) and the fixed
    fields (the defaults, then [fixed]; a searched field is not fixed), each field checked."""
    user_fixed = raw.get("fixed", {})
    space = settings.get("space", "default")
    if space not in SPACES:
        raise ConfigError(f"[study].space: expected one of {', '.join(SPACES)}, got {space!r}")
    if "space" in settings and "search" in raw:
        raise ConfigError("[study].space: a [search] section is the study's space; give one of them")
    search_raw = raw.get("search", {key: value for key, value in SPACES[space].items() if key not in user_fixed})
    fixed = {**DEFAULT_FIXED, **user_fixed}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for section, keys in (("search", search_raw), ("fixed", fixed)):
        for key in keys:
            if key not in fields:
                raise ConfigError(f"[{section}].{key}: not a config field; known: {', '.join(sorted(fields))}")
    clash = sorted(set(search_raw) & set(user_fixed))
    if clash:
        raise ConfigError(f"[fixed].{clash[0]} is also in [search]: a field is either fixed or searched; keep one")
    for key in set(search_raw) & set(fixed):  # a searched key wins over a default fixed value
        fixed.pop(key)
    TrainConfig.from_dict(fixed)
    return search_raw, fixed


def _check_spec(spec: StudySpec, settings: dict[str, Any]) -> None:
    if spec.metric not in SEARCHABLE_METRICS:
        raise ConfigError(f"[study].metric: expected one of {list(SEARCHABLE_METRICS)}, got {spec.metric!r}")
    for name in spec.baselines:
        if name not in PRESETS:
            raise ConfigError(f"[study].baselines: unknown preset {name!r}")
        if name not in PAPER_PRESETS and not spec.expresses(name):
            missing = sorted(key for key in PRESETS[name] if key not in spec.search)
            raise ConfigError(f"[study].baselines: {name} needs {', '.join(missing)} searched (or fixed to its "
                              f"values) to run as itself")
    _check_paper_method(spec, given="baselines" in settings)
    if spec.sampler not in SAMPLERS:
        raise ConfigError(f"[study].sampler: expected one of {', '.join(SAMPLERS)}, got {spec.sampler!r}")
    if spec.cpus_per_trial <= 0 or spec.gpus_per_trial < 0:
        raise ConfigError("[study]: cpus_per_trial must be > 0 and gpus_per_trial >= 0")
    if spec.gpus_per_trial > 1 and spec.gpus_per_trial != int(spec.gpus_per_trial):
        raise ConfigError(f"gpus per trial {spec.gpus_per_trial}: a fraction must be at most 1, else a whole number")
    _check_scheduler(spec, settings)


def _check_scheduler(spec: StudySpec, settings: dict[str, Any]) -> None:
    """The scheduler and its settings: PBT mutates only searched fields that may change mid-training."""
    if spec.scheduler not in SCHEDULERS:
        raise ConfigError(f"[study].scheduler: expected one of {', '.join(SCHEDULERS)}, got {spec.scheduler!r}")
    if not spec.population_based:
        given = [key for key in PBT_SETTINGS if key in settings]
        if given:
            raise ConfigError(f"[study].{given[0]}: a PBT setting; it needs scheduler = \"pbt\" (or \"pb2\")")
        return
    if settings.get("lengthen"):
        raise ConfigError(f"[study].lengthen: {spec.scheduler} trains one population of one length; set "
                          "lengthen = false, or lengthen a population's trials with [fixed] iterations")
    if spec.budget:
        raise ConfigError(f"[study].budget: {spec.scheduler} trains one population, started at once; size it with "
                          "samples instead")
    if spec.multi_objective:
        raise ConfigError(f"[study].multi_objective: {spec.scheduler} ranks a population by one score; "
                          "set multi_objective = false (or use scheduler = \"asha\")")
    if not 0 < spec.quantile_fraction <= 0.5:
        raise ConfigError(f"[study].quantile_fraction: {spec.quantile_fraction} must be above 0 and at most 0.5")
    if not 0 <= spec.resample_probability <= 1:
        raise ConfigError(f"[study].resample_probability: {spec.resample_probability} must be within [0, 1]")
    for key in spec.mutate:
        if key not in MUTABLE_FIELDS:
            raise ConfigError(f"[study].mutate: {key} cannot change in the middle of a training; PBT mutates only "
                              f"{', '.join(MUTABLE_FIELDS)}")
        if key not in spec.search:
            raise ConfigError(f"[study].mutate: {key} is not searched; add [search].{key} (the values PBT moves it "
                              "within)")
    if not spec.mutations:
        raise ConfigError(f"[study].scheduler {spec.scheduler}: no searched field may change mid-training; search "
                          f"one of {', '.join(MUTABLE_FIELDS)}")
    if spec.perturbation_interval >= spec.evaluations:
        raise ConfigError(f"[study].perturbation_interval: {spec.perturbation_interval} evaluations, but a trial "
                          f"makes {spec.evaluations}: PBT would never perturb (lower it, or evaluate more often)")
    if spec.scheduler == "pb2":
        choices = [key for key, domain in spec.mutations.items() if not isinstance(domain, Range)]
        if choices:
            raise ConfigError(f"[study].scheduler pb2 mutates ranges only; [search].{choices[0]} is a choice list "
                              "(leave it out of mutate, or use pbt)")
        if spec.perturbation_interval < 2:
            # Measured: at 1 every PB2 step copied the best trial's config exactly (Ray's _explore
            # finds no reward change under one config to fit its GP to), so all became one trial.
            raise ConfigError("[study].perturbation_interval: pb2 needs at least 2 (its GP learns from the change "
                              "between two evaluations under one config; at 1 it only copies the best trial's)")
        import importlib.util

        missing = [name for name in ("GPy", "sklearn") if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"[study].scheduler pb2 needs {' and '.join(missing)}, not installed here "
                              "(pip install GPy scikit-learn), or use scheduler = \"pbt\"")


class SearchSpace:
    """The Optuna define-by-run function: parameter names are config field names.

    A class, not a closure: Tune saves the searcher with plain pickle, and that saved state is
    what a resumed study continues from.
    """

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec

    def __call__(self, trial) -> dict[str, Any]:
        """Suggests the searched fields; returns every other field, which Tune adds to the trial's
        config: its params.json then holds the whole config, in the form a local trial writes."""
        for key, domain in self.spec.search.items():
            domain.suggest(trial, key)
        return {key: value for key, value in trial_params(self.spec.base_config()).items()
                if key not in self.spec.search}


def define_by_run(spec: StudySpec) -> SearchSpace:
    return SearchSpace(spec)


def trial_config(params: dict[str, Any], spec: StudySpec) -> TrainConfig:
    """A trial's config from its sampled parameters on top of the fixed ones."""
    values = {key: value for key, value in params.items() if key in spec.search}
    return TrainConfig.from_dict(values, base=spec.base_config())
