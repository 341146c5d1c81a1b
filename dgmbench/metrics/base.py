"""The metric protocol: every metric says which models it applies to and returns values
that carry their own protocol (unit, sample counts, estimator settings), so a number in
the results store can always be traced to how it was computed."""
from __future__ import annotations

import difflib
import math
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

import torch

from dgmbench.data.base import Dataset
from dgmbench.registry import Registry, import_submodules
from dgmbench.validation import shown


@dataclass
class MetricValue:
    name: str  # e.g. "nll", "bpd", "elbo", "iwae_nll", "fid"
    value: float
    unit: str = ""  # "nats", "bits/dim", "" for scores
    n: int = 0  # number of test examples (or generated samples) it averages over
    stderr: float | None = None  # standard error of the mean, where meaningful
    kind: str = "exact"  # "exact" | "bound" | "estimate" | "score"
    higher_is_better: bool = False
    protocol: dict[str, Any] = field(default_factory=dict)  # k, extractor hash, schedule, ...

    def to_dict(self) -> dict:
        return asdict(self)


class SettingError(ValueError):
    """A ``-e key=value`` evaluation setting that no metric reads, or a value of the wrong
    type or range. A ValueError, so the CLI reports it as one line."""


class UndeclaredSettingError(LookupError):
    """A metric read an evaluation setting it does not declare in its ``settings``: a bug in
    the metric (its settings would escape validation and the documentation), not a user error."""


@dataclass(frozen=True)
class Setting:
    """One ``-e key=value`` setting a metric reads, declared on the metric class:

        settings = {"iwae_k": Setting(int, "importance samples for the IWAE bound", minimum=1)}

    ``type`` is the TOML value's Python type (int, float, bool, str, list[float], or a tuple
    of these); an int is accepted where a float is expected. ``optional``: ``none`` is allowed
    (the metric's own default). ``minimum``/``maximum`` bound numbers (and list items), and
    ``choices`` lists the allowed values; ``greater_than`` is a strict lower bound."""

    type: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    optional: bool = False
    greater_than: float | None = None  # strict lower bound (e.g. 0 for a positive bandwidth)

    def check(self, key: str, value: Any) -> None:
        """Raise SettingError (one line: what is wrong, what is valid) unless `value` fits."""
        if value is None:
            if self.optional:
                return
            raise SettingError(f"-e {key}=none is not allowed: {self.valid(key)}")
        if not _is_instance(value, self.type):
            raise SettingError(f"-e {key}={shown(value)} has the wrong type: {self.valid(key)}")
        numbers = value if isinstance(value, list) else [value]
        for number in numbers:
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                if not math.isfinite(number) or (self.minimum is not None and number < self.minimum) or (
                    self.maximum is not None and number > self.maximum) or (
                    self.greater_than is not None and number <= self.greater_than
                ):
                    raise SettingError(f"-e {key}={shown(value)} is out of range: {self.valid(key)}")
        if self.choices is not None and value not in self.choices:
            raise SettingError(f"-e {key}={shown(value)} is not allowed: {self.valid(key)}")

    def valid(self, key: str) -> str:
        """What values are valid, in words: 'iwae_k must be an integer >= 1 (importance samples ...)'."""
        text = _type_words(self.type)
        if self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        bounds = [f">= {self.minimum:g}" if self.minimum is not None else "",
                  f"> {self.greater_than:g}" if self.greater_than is not None else "",
                  f"<= {self.maximum:g}" if self.maximum is not None else ""]
        if any(bounds):
            text += " " + " and ".join(b for b in bounds if b)
        if self.optional:
            text += " or none"
        return f"{key} must be {text} ({self.description})"


def _is_instance(value: Any, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return any(_is_instance(value, option) for option in expected)
    origin = typing.get_origin(expected)
    if origin is list:
        (item,) = typing.get_args(expected)
        return isinstance(value, list) and all(_is_instance(v, item) for v in value)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is Any or expected is object:
        return True
    return isinstance(value, expected)


def _type_words(expected: Any) -> str:
    if isinstance(expected, tuple):
        return " or ".join(_type_words(option) for option in expected)
    if typing.get_origin(expected) is list:
        return f"a list of {_type_words(typing.get_args(expected)[0]).split(' ', 1)[1]}s"
    return {int: "an integer", float: "a number", bool: "a boolean (true/false)", str: "a string"}.get(
        expected, "a value")


def declared_settings(metric: Any) -> dict[str, Setting]:
    """A metric's declared settings as Setting objects (a bare description string, the
    older form, declares a setting of any type)."""
    return {key: spec if isinstance(spec, Setting) else Setting(object, str(spec))
            for key, spec in getattr(metric, "settings", {}).items()}


# Keys the runner itself reads from -e (not any one metric). Every metric may read these.
GLOBAL_SETTINGS: dict[str, Setting] = {
    "metrics": Setting((str, list[str]), "which metrics to run, e.g. metrics=[\"exact_likelihood\"]; "
                       "default: every metric that applies"),
    "batch_size": Setting(int, "evaluation batch size", minimum=1),
}


def validate_eval_settings(settings: dict[str, Any]) -> None:
    """Check every ``-e`` key and value before any work starts: unknown keys fail with a
    did-you-mean and the valid keys; values must fit every declaration of their key."""
    declarations: dict[str, list[Setting]] = {key: [spec] for key, spec in GLOBAL_SETTINGS.items()}
    for _, metric in METRICS.items():
        for key, spec in declared_settings(metric).items():
            declarations.setdefault(key, []).append(spec)
    for key, value in settings.items():
        if key not in declarations:
            valid = sorted(declarations)
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SettingError(f"unknown evaluation setting -e {key}.{hint} Valid settings: {', '.join(valid)} "
                               "(see `dgmbench metrics`)")
        for spec in declarations[key]:
            spec.check(key, value)
    only = settings.get("metrics")
    for name in [only] if isinstance(only, str) else only or []:
        if name not in METRICS:
            METRICS.get(name)  # unknown metric names fail with the valid ones


@dataclass
class EvalContext:
    """What a metric may use besides the model and the data."""

    split: str = "test"
    batch_size: int = 500
    device: torch.device = torch.device("cpu")
    seed: int = 0
    quick: bool = False  # quick suite: metrics may use smaller, recorded settings
    settings: dict[str, Any] = field(default_factory=dict)  # e.g. {"iwae_k": 5000}
    workdir: str | None = None  # for caches (reference statistics, ...)

    def setting(self, key: str, default: Any) -> Any:
        """The ``-e`` value of `key`, else `default`. While :func:`evaluate` runs a metric,
        reading a key that metric does not declare (nor GLOBAL_SETTINGS) raises
        UndeclaredSettingError, so no setting escapes validation."""
        reader = self._reader
        if reader is not None and key not in GLOBAL_SETTINGS and key not in declared_settings(reader):
            raise UndeclaredSettingError(
                f"metric {getattr(reader, 'name', reader)!r} reads the evaluation setting {key!r} but does not "
                f"declare it; add it to {type(reader).__name__}.settings "
                f"(e.g. {key!r}: Setting(int, \"what it is\", minimum=1))"
            )
        return self.settings.get(key, default)

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + offset)

    # model samples drawn for this evaluation, by (model id, n): see model_samples
    _samples: dict = field(default_factory=dict, repr=False, compare=False)
    # the metric evaluate() is running now: setting() checks its reads against its declaration
    _reader: Any = field(default=None, repr=False, compare=False)


@torch.no_grad()
def model_samples(model, n: int, ctx: EvalContext) -> torch.Tensor:
    """n samples of `model` (float, on the CPU), drawn in batches of ctx.batch_size under a
    forked RNG seeded with ctx.seed, so the caller's random state is untouched and every
    sample-based metric of one evaluation scores the same samples. They are drawn once per
    (model, n) and evaluation; a metric asking for the same n gets them from the cache,
    exactly as it would have drawn them itself."""
    key = (id(model), n)
    cached = ctx._samples.get(key)
    if cached is not None and cached[0] is model:
        return cached[1]
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.seed)
        if devices:
            torch.cuda.manual_seed(ctx.seed)
        chunks = [model.sample(len(batch)).detach().cpu() for batch in torch.arange(n).split(ctx.batch_size)]
    samples = torch.cat(chunks).float()
    ctx._samples[key] = (model, samples)
    return samples


class Metric(Protocol):
    name: str
    settings: ClassVar[dict[str, Setting]]  # every -e key it reads via ctx.setting(...)

    def applies(self, model, dataset: Dataset) -> bool: ...

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]: ...


def _load_metrics() -> None:
    import_submodules("dgmbench.metrics")
    import_submodules("dgmbench.models")  # some model files register their own metric (e.g. dbm_vlb)


METRICS: Registry[Metric] = Registry("metric", loader=_load_metrics)


def register_metric(metric: Metric) -> Metric:
    return METRICS.register(metric.name, metric)


def evaluate(model, dataset: Dataset, ctx: EvalContext, only: list[str] | None = None) -> list[MetricValue]:
    """Every registered metric that applies to `model` on `dataset`."""
    values: list[MetricValue] = []
    names = only if only is not None else METRICS.names()
    model.eval()
    for name in names:
        metric = METRICS.get(name)
        if metric.applies(model, dataset):
            ctx._reader = metric
            try:
                values.extend(metric(model, dataset, ctx))
            finally:
                ctx._reader = None
    return values
