"""What a search space is made of: a domain of values for one config field, a choice list or a
range, in the study file's form (TOML), in study.json's (``to_dict``) and as Optuna's distribution.
The study file (study/spec.py) gathers them into a space; analysis reads them back from study.json
without the study package."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

from trainable.config import TrainConfig, field_types
from trainable.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Choice:
    """A list of values, each in the study form of a config value (``param_value``). With ``draw``,
    the sampler draws only those (a subset); the other values are points of the space that only the
    baselines and given points take (the paper's concat discriminator in the default space)."""

    values: tuple[Any, ...]
    draw: tuple[Any, ...] | None = None
    log: ClassVar[bool] = False  # a figure's axis: choices are never on a log scale

    @property
    def drawn(self) -> tuple[Any, ...]:
        """The values the sampler draws."""
        return self.values if self.draw is None else self.draw

    def contains(self, value: Any) -> bool:
        return value in self.values

    def size(self) -> int:
        """How many values a draw can take."""
        return len(self.drawn)

    def describe(self) -> str:
        return f"{list(self.values)}" + ("" if self.draw is None else f" (drawn: {list(self.draw)})")

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), **({} if self.draw is None else {"draw": list(self.draw)})}

    def suggest(self, trial, name: str) -> Any:
        # Over every value: an Optuna study keeps one list per parameter, and the baselines take any
        # of them; the study's sampler draws among ``drawn`` (study/_search.py, DrawSampler).
        return trial.suggest_categorical(name, list(self.values))

    def distribution(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.values))

    @classmethod
    def from_toml(cls, key: str, raw: list[Any], draw: list[Any] | None = None) -> "Choice":
        if not raw:
            raise ConfigError(f"[search].{key}: empty choice list")
        configs = []
        for value in raw:  # every choice must make a valid config, and a config of its own
            config = getattr(TrainConfig.from_dict({key: value}), key)
            if config in configs:
                raise ConfigError(f"[search].{key}: {json.dumps(raw[configs.index(config)])} and {json.dumps(value)} "
                                  "are the same value; list each once")
            configs.append(config)
        if draw is None:
            return cls(tuple(raw))
        if not isinstance(draw, list) or not draw:
            raise ConfigError(f"[search].{key}: draw must be a non-empty list of some of its values")
        outside = [value for value in draw if value not in raw]
        if outside:
            raise ConfigError(f"[search].{key}: draw {json.dumps(outside)} not among its values {json.dumps(raw)}")
        return cls(tuple(raw), tuple(dict.fromkeys(draw)))


@dataclasses.dataclass(frozen=True)
class Range:
    """Numbers from low to high, on a log scale or not; whole numbers (with a step) for an int field.
    With ``draw`` (a float range), the sampler draws only within [draw low, draw high]; the rest
    of the range holds points that only the baselines and given points take (the paper's rate of
    2e-4 in the default space)."""

    low: float
    high: float
    log: bool = False
    step: int | None = None
    integer: bool = False
    draw: tuple[float, float] | None = None

    @property
    def drawn(self) -> tuple[float, float]:
        """The bounds the sampler draws within."""
        return (self.low, self.high) if self.draw is None else self.draw

    def contains(self, value: Any) -> bool:
        on_step = not (self.integer and self.step) or (value - self.low) % self.step == 0
        return isinstance(value, (int, float)) and self.low <= value <= self.high and on_step

    def size(self) -> int | None:
        """How many values it holds: None for a float range."""
        return (int(self.high) - int(self.low)) // (self.step or 1) + 1 if self.integer else None

    def describe(self) -> str:
        return (f"[{self.low}, {self.high}]" + (f" in steps of {self.step}" if self.integer and self.step else "")
                + ("" if self.draw is None else f" (drawn: [{self.draw[0]}, {self.draw[1]}])"))

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        if self.draw is None:
            del raw["draw"]  # study.json as before for a range drawn whole
        else:
            raw["draw"] = list(self.draw)
        return raw

    def suggest(self, trial, name: str) -> float | int:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=self.step or 1)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def distribution(self, drawn: bool = False):
        """Optuna's distribution of the whole range (what Optuna's study keeps), or of the part
        the sampler draws (``drawn``)."""
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=self.step or 1)
        low, high = self.drawn if drawn else (self.low, self.high)
        return FloatDistribution(low, high, log=self.log)

    @classmethod
    def from_toml(cls, key: str, raw: dict[str, Any]) -> "Range":
        unknown = set(raw) - {"low", "high", "log", "step", "draw"}
        if unknown or "low" not in raw or "high" not in raw:
            raise ConfigError(f"[search].{key}: a range needs low and high (optional log, step, draw), got {sorted(raw)}")
        integer = field_types()[key].base is int
        low, high = raw["low"], raw["high"]
        for bound, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"[search].{key}: {bound} must be a number, got {value!r}")
        if not isinstance(raw.get("log", False), bool):
            raise ConfigError(f"[search].{key}: log must be true or false, got {raw['log']!r}")
        step = raw.get("step")
        if step is not None and (not integer or isinstance(step, bool) or not isinstance(step, int) or step < 1):
            raise ConfigError(f"[search].{key}: step must be a whole number >= 1 on an integer field, got {step!r}")
        if not low < high:
            raise ConfigError(f"[search].{key}: low {low} must be below high {high}")
        TrainConfig.from_dict({key: int(low) if integer else float(low)})
        TrainConfig.from_dict({key: int(high) if integer else float(high)})
        if raw.get("log") and low <= 0:
            raise ConfigError(f"[search].{key}: a log range needs low > 0")
        draw = raw.get("draw")
        if draw is not None:
            if integer:
                raise ConfigError(f"[search].{key}: draw is for a range of decimal numbers; list the whole numbers "
                                  "in a choice table instead")
            if (not isinstance(draw, list) or len(draw) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                                    for v in draw) or not low <= draw[0] < draw[1] <= high):
                raise ConfigError(f"[search].{key}: draw must be [low, high] within [{low}, {high}], low below high, "
                                  f"got {draw!r}")
            draw = (float(draw[0]), float(draw[1]))
        return cls(float(low), float(high), raw.get("log", False), step, integer, draw)


Domain = Choice | Range


def space_size(search: dict[str, Domain]) -> int | None:
    """How many distinct configurations a search space holds; None where a float range makes it
    unbounded."""
    size = 1
    for domain in search.values():
        count = domain.size()
        if count is None:
            return None
        size *= count
    return size


def domain_from_dict(raw: dict[str, Any]) -> Domain:
    """A domain from its study.json form (``to_dict``)."""
    if "values" in raw:
        return Choice(tuple(raw["values"]), None if raw.get("draw") is None else tuple(raw["draw"]))
    return Range(**{**raw, "draw": None if raw.get("draw") is None else tuple(raw["draw"])})


def domain_from_toml(key: str, raw: Any) -> Domain:
    """A domain from the study file: a list of choices, a table of them with the values drawn
    (``{values = [...], draw = [...]}``), or a table with low and high."""
    if isinstance(raw, list):
        return Choice.from_toml(key, raw)
    if isinstance(raw, dict) and "values" in raw:
        unknown = set(raw) - {"values", "draw"}
        if unknown or not isinstance(raw["values"], list):
            raise ConfigError(f"[search].{key}: a choice table needs a list of values (optional draw), got {sorted(raw)}")
        return Choice.from_toml(key, raw["values"], raw.get("draw"))
    if isinstance(raw, dict):
        return Range.from_toml(key, raw)
    raise ConfigError(f"[search].{key}: expected a list of choices, a table of values and draw, or a table with "
                      "low and high")
