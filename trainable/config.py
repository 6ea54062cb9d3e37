"""One frozen, validated configuration for a trial; the paper's variants are presets of it."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from typing import Any, Mapping, NamedTuple

from trainable.errors import ConfigError

NORMALIZATIONS = ("[0,1]", "[-1,1]")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
D_NORMS = ("batch", "spectral", "none")
# The config fields that switch on a GAN remedy (their defaults are the paper's behaviour).
REMEDY_FIELDS = ("d_norm", "g_spectral_norm", "conditioning", "loss", "r1_gamma", "diffaugment", "g_ema",
                 "label_smoothing", "instance_noise", "minibatch_std", "d_steps")
# The fields beside a paper preset's own that make a GAN the paper's: no remedy, the paper's Adam
# and LeakyReLU. A study runs the paper's V0/V1/V2 at its own widths, batch size and length, never
# with these changed. (freeze_window is not the paper's: it gives V2's "accuracy too high" no window.)
PAPER_METHOD_FIELDS = (*REMEDY_FIELDS, "g_lr", "d_lr", "g_beta1", "g_beta2", "d_beta1", "d_beta2", "leaky_slope")
# The fields that may change in the middle of a training (Population Based Training's explore, a
# replayed PBT schedule): the trainer applies a new value to its optimisers and modules at once.
# Every other field fixes the models, their state or the run, and stays as the trial started.
MUTABLE_FIELDS = ("g_lr", "d_lr", "g_beta1", "g_beta2", "d_beta1", "d_beta2", "d_dropout", "r1_gamma",
                  "label_smoothing", "instance_noise", "diffaugment", "d_steps", "freeze_accuracy", "freeze_after")
CONDITIONINGS = ("concat", "projection")
LOSSES = ("bce", "hinge", "least-squares")
AUGMENTATIONS = ("off", "translation", "translation,cutout")
OFF = ("off", "none", "null", "")


def param_value(value: Any) -> Any:
    """A config value in the form a study's search space and params.json use: a sequence of
    filters as "a,b,c" (a tuple in a config, a list once read back from JSON), None as "off"."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return "off" if value is None else value


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # Model (paper section 7). The generator projects [z, one-hot label] to a 7x7 map of
    # g_filters[0] channels, then transposed convolutions give g_filters[0], [1], [2], 1 channels.
    latent_size: int = 100
    d_filters: tuple[int, int, int] = (32, 64, 128)
    d_dropout: float = 0.0
    g_filters: tuple[int, int, int] = (256, 128, 64)
    leaky_slope: float = 0.2
    normalization: str = "[0,1]"  # [0,1] -> sigmoid output, [-1,1] -> tanh output
    # Optimisation. The paper prints "beta1 0.05, beta2 0.09" (section 7): typos for the DCGAN
    # standard 0.5 / 0.999, which we use; the other Adam values are Keras defaults (eps 1e-7).
    g_lr: float = 2e-4
    g_beta1: float = 0.5
    g_beta2: float = 0.999
    d_lr: float = 2e-4
    d_beta1: float = 0.5
    d_beta2: float = 0.999
    batch_size: int = 64
    iterations: int = 400_000
    # Remedies from the GAN literature for the paper's failures (D overpowering G, mode
    # collapse). Each default is the paper's behaviour; each is cited where it is used
    # (trainable/models.py, trainable/training.py, trainable/augment.py).
    d_norm: str = "batch"  # batch (paper) | spectral (Miyato et al. 2018) | none
    g_spectral_norm: bool = False  # spectral norm in G too (Zhang et al. 2019, SAGAN)
    conditioning: str = "concat"  # concat (paper's label map) | projection (Miyato & Koyama 2018)
    loss: str = "bce"  # bce (paper; non-saturating G) | hinge (Lim & Ye 2017) | least-squares (Mao et al. 2017)
    r1_gamma: float = 0.0  # R1 penalty on real images (Mescheder et al. 2018); 0 = off
    diffaugment: str = "off"  # DiffAugment (Zhao et al. 2020) on real and fake: off | translation | translation,cutout
    g_ema: float = 0.0  # decay of an exponential moving average of G (Yazici et al. 2019); 0 = off
    label_smoothing: float = 0.0  # one-sided: real targets 1 - s (Salimans et al. 2016); bce and least-squares
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs, annealed to 0 (Sonderby et al. 2017)
    minibatch_std: bool = False  # a batch-spread feature map in D (Karras et al. 2018)
    d_steps: int = 1  # D updates per G update (Goodfellow et al. 2014's k)
    # Freeze rule (V2): D is not updated after freeze_after iterations, or while its accuracy
    # over the last freeze_window iterations exceeds freeze_accuracy. None switches a rule off.
    freeze_after: int | None = None
    freeze_accuracy: float | None = None
    freeze_window: int = 100
    # Evaluation and reporting.
    eval_every: int = 1000
    eval_samples_per_class: int = 100
    grid_columns: int = 8
    # Collapse verdict: evidence must persist for collapse_patience consecutive evaluations,
    # and none is judged before collapse_grace iterations (an untrained G is not "collapsed").
    # The defaults come from runs on the synthetic set (see trainable/verdict.py).
    collapse_patience: int = 3
    collapse_grace: int = 2000
    mode_collapse_diversity: float = 0.35
    mode_collapse_coverage: float = 0.05
    # None: the measured default of the chosen loss (trainable/verdict.py LOSS_COLLAPSE_D_LOSS).
    loss_collapse_d_loss: float | None = None
    loss_collapse_accuracy: float = 1.0
    loss_collapse_divergence: float = 25.0
    seed: int = 0
    device: str = "auto"
    # bf16 autocast: 2.1x the reference at the V0 width and 1.6x at the small width on a CPU with
    # AVX-512 BF16 (fp32: 1.1x / 1.2x; benchmarks/train_speed.py), learning as well as fp32 (judge
    # accuracy 0.347 vs 0.340 at 2000 iterations). "auto" is bf16 where the CPU or GPU computes
    # bf16 natively, else fp32.
    precision: str = "auto"
    # On a CUDA device, each step replayed as one CUDA graph (trainable/training.py): V0 on an
    # H200 at 383 it/s in fp32 against 86 eager, computing the same numbers. false: eager steps.
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        for name in ("d_filters", "g_filters"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or len(value) != 3 or not all(isinstance(v, int) and v >= 1 for v in value):
                raise ConfigError(f"{name}: expected three positive integers, got {value!r}")
        _check_range("latent_size", self.latent_size, 1, 4096, integer=True)
        _check_range("d_dropout", self.d_dropout, 0.0, 0.95)
        _check_range("leaky_slope", self.leaky_slope, 0.0, 1.0)
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization: expected one of {list(NORMALIZATIONS)}, got {self.normalization!r}")
        for name in ("g_lr", "d_lr"):
            _check_range(name, getattr(self, name), 1e-7, 1.0)
        for name in ("g_beta1", "d_beta1", "g_beta2", "d_beta2"):
            _check_range(name, getattr(self, name), 0.0, 0.99999)
        for name, allowed in (("d_norm", D_NORMS), ("conditioning", CONDITIONINGS), ("loss", LOSSES),
                              ("diffaugment", AUGMENTATIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: expected one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("g_spectral_norm", "minibatch_std", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        _check_range("r1_gamma", self.r1_gamma, 0.0, 1000.0)
        _check_range("g_ema", self.g_ema, 0.0, 0.99999)
        if 0 < self.g_ema < 0.5:
            raise ConfigError(f"g_ema: {self.g_ema!r} is no average; use 0 (off) or a decay in [0.5, 0.99999]")
        _check_range("label_smoothing", self.label_smoothing, 0.0, 0.5)
        _check_range("instance_noise", self.instance_noise, 0.0, 1.0)
        _check_range("d_steps", self.d_steps, 1, 10, integer=True)
        _check_range("batch_size", self.batch_size, 2, 65536, integer=True)
        _check_range("iterations", self.iterations, 1, 10**9, integer=True)
        if self.freeze_after is not None:
            _check_range("freeze_after", self.freeze_after, 0, 10**9, integer=True)
        if self.freeze_accuracy is not None:
            _check_range("freeze_accuracy", self.freeze_accuracy, 0.5, 1.0)
        _check_range("freeze_window", self.freeze_window, 1, 10**6, integer=True)
        _check_range("eval_every", self.eval_every, 1, 10**9, integer=True)
        _check_range("eval_samples_per_class", self.eval_samples_per_class, 10, 100_000, integer=True)
        _check_range("grid_columns", self.grid_columns, 1, 64, integer=True)
        _check_range("collapse_patience", self.collapse_patience, 1, 10**6, integer=True)
        _check_range("collapse_grace", self.collapse_grace, 0, 10**9, integer=True)
        _check_range("mode_collapse_diversity", self.mode_collapse_diversity, 0.0, 10.0)
        _check_range("mode_collapse_coverage", self.mode_collapse_coverage, 0.0, 1.0)
        if self.loss_collapse_d_loss is not None:
            _check_range("loss_collapse_d_loss", self.loss_collapse_d_loss, 0.0, 10.0)
        _check_range("loss_collapse_accuracy", self.loss_collapse_accuracy, 0.5, 1.0)
        _check_range("loss_collapse_divergence", self.loss_collapse_divergence, 1.0, 1e9)
        _check_range("seed", self.seed, 0, 2**63 - 1, integer=True)
        if self.device not in DEVICES:
            raise ConfigError(f"device: expected one of {list(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {list(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, base: "TrainConfig | None" = None) -> "TrainConfig":
        """Build from plain values (JSON, Optuna parameters, ``--set`` strings); unknown keys are errors."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r}; known keys: {', '.join(fields)}")
        base = base or cls()
        kinds = field_types()
        parsed = {name: _coerce(name, value, kinds[name]) for name, value in values.items()}
        return dataclasses.replace(base, **parsed)

    def to_dict(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}

    @property
    def evaluations(self) -> int:
        """Reports of a trial with this config that runs to its end (the last iteration is reported too)."""
        return -(-self.iterations // self.eval_every)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict(changes, base=self)

    def changes_from(self, other: "TrainConfig") -> dict[str, tuple[Any, Any]]:
        """{field: (other's value, this value)} for each field in which the two differ."""
        return {name: (getattr(other, name), getattr(self, name)) for name in self.__dataclass_fields__
                if getattr(other, name) != getattr(self, name)}

    def fixed_changes_from(self, other: "TrainConfig") -> list[str]:
        """The fields that differ from ``other`` and cannot change in the middle of a training (not
        in MUTABLE_FIELDS), sorted."""
        return sorted(set(self.changes_from(other)) - set(MUTABLE_FIELDS))


def _check_range(name: str, value: Any, low: float, high: float, *, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name}: expected {kind}, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{name}: {value!r} out of range [{low}, {high}]")


class FieldType(NamedTuple):
    base: type  # int, float, bool, str or tuple
    optional: bool  # ``X | None``: None (written "off") switches it off


@functools.cache
def field_types() -> dict[str, FieldType]:
    """Each config field's real type, from the evaluated annotations (not their text)."""
    kinds = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (types.UnionType, typing.Union) and type(None) in args
        if optional:
            (hint,) = [arg for arg in args if arg is not type(None)]
        kinds[name] = FieldType(typing.get_origin(hint) or hint, optional)
    return kinds


def _coerce(name: str, value: Any, kind: FieldType) -> Any:
    """Turn a string or JSON value into the field's type, naming the key when it cannot."""
    if isinstance(value, str):
        text = value.strip()
        if kind.optional and text.lower() in OFF:
            return None
        if kind.base is tuple:
            try:
                return tuple(int(p) for p in text.strip("()[]").replace("-", ",").split(",") if p.strip())
            except ValueError:
                raise ConfigError(f"{name}: expected integers like 32,64,128, got {value!r}") from None
        if kind.base is str:
            return text
        if kind.base is bool:
            if text.lower() not in ("true", "false"):
                raise ConfigError(f"{name}: expected true or false, got {value!r}")
            return text.lower() == "true"
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(f"{name}: cannot read {value!r} as a number") from None
    if kind.base is tuple and isinstance(value, list):
        return tuple(value)
    if kind.base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind.base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# The paper's variants (section 8). It gives no numbers for V1's dropout and "fewer filters"
# or V2's "accuracy too high": we choose dropout 0.3, half the filters, and 0.95 over the window.
PRESETS: dict[str, dict[str, Any]] = {
    "V0": {},
    "V1": {"latent_size": 80, "d_filters": (16, 32, 64), "d_dropout": 0.3},
    "V2": {"latent_size": 80, "d_filters": (16, 32, 64), "d_dropout": 0.3,
           "freeze_after": 50_000, "freeze_accuracy": 0.95},
}


# A reference point that is not the paper's: V0 with the remedy and the settings that measured
# best on the built-in set (benchmarks/remedies.py, README): the projection discriminator, the
# [-1,1] range with a tanh G (DCGAN's choice) and lr 2e-3 for G and D. One seed: at lr 2e-3
# conditional accuracy 0.52 at 1000 iterations and 0.61 / FD-intra 4.6 at 2000 (0.44 / 8.0
# without projection); at lr 1e-3 0.5 only at 1500; spectral norm + hinge + EMA of G on top did worse.
RECIPE: dict[str, Any] = {"conditioning": "projection", "normalization": "[-1,1]", "g_lr": 2e-3, "d_lr": 2e-3}
PRESETS["recipe"] = RECIPE
PAPER_PRESETS = ("V0", "V1", "V2")


def preset_label(name: str, *, short: bool = False) -> str:
    """How summaries and dashboards name a preset: the paper's, or a reference point."""
    if name in PAPER_PRESETS:
        return f"paper {name}" if short else f"the paper's {name}"
    return f"ref. {name}" if short else f"reference {name}"


def preset(name: str, **overrides: Any) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {list(PRESETS)}")
    return TrainConfig.from_dict({**PRESETS[name], **overrides})
