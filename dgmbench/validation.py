"""Checks of every user-given value (``-o``, ``-t``, ``-e``, ``--seed``, ``--device``) before
any data is loaded, anything is trained or any file is written.

A bad value fails with a :class:`ConfigError` (a ValueError: the CLI prints it as one line
and exits with status 2) that says what was wrong and what is valid.

* Types come from the dataclass annotations of a model's ``Config`` and of
  :class:`~dgmbench.models.base.TrainConfig`, so a new model is checked without any code of
  its own. An int is accepted where a float is expected; a list where a tuple is.
* Ranges: :data:`TRAIN_RANGES` for the training options. For a model's ``Config`` the
  range is inferred from its reference defaults -- numbers are never negative, and an int
  (or the ints of a tuple) whose default is at least 1 is a size or a count and must stay
  at least 1 (hidden units, layers, chains, steps). A Config can state ranges explicitly in
  a class attribute ``option_ranges = {"dropout": (0.0, 0.99)}`` ((minimum, maximum), either
  None), which replaces the inferred one, and can check anything else in ``__post_init__``
  by raising ValueError.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any

from dgmbench.models.base import TrainConfig


class ConfigError(ValueError):
    """A user-given option that does not fit; the message is one line."""


def read_toml_file(path, label: str) -> dict:
    """A user's TOML file (a --config or sweep file); every failure is one ConfigError line
    starting with `label` (e.g. "--config run.toml"): a syntax error names the line."""
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:  # its message ends "(at line L, column C)"
        raise ConfigError(f"{label}: not valid TOML: {err}") from None
    except IsADirectoryError:
        raise ConfigError(f"{label} is a directory; give a TOML file") from None
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file") from None


# (minimum, maximum, strict minimum) of each TrainConfig option; None: unbounded
TRAIN_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "epochs": (1, None, False),
    "batch_size": (1, None, False),
    "lr": (0, None, True),
    "weight_decay": (0, None, False),
    "grad_clip": (0, None, True),
    "patience": (1, None, False),
    "seed": (0, None, False),
    "eval_batch_size": (1, None, False),
}


def shown(value: Any) -> str:
    """A value as typed on the command line (TOML): true, "abc", [1, 2], none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(shown, value)) + "]"
    return repr(value)


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is Any:
        return True
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is tuple or expected is list or origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return not args or all(_matches(item, args[0]) for item in value)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True  # an annotation we cannot check (Literal, a Protocol, ...): the Config decides


def _words(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_words(option) for option in typing.get_args(expected))
    if expected is type(None):
        return "none"
    if expected is tuple or expected is list or origin in (tuple, list):
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return f"a list of {_words(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        expected, getattr(expected, "__name__", str(expected)))


def _range_words(low, high, strict) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if strict else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def _numbers(value: Any) -> list:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _inferred_range(field: dataclasses.Field) -> tuple[float | None, float | None, bool]:
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    numbers = _numbers(default)
    if not numbers or any(n < 0 for n in numbers):
        return (None, None, False)
    if all(isinstance(n, int) and n >= 1 for n in numbers):
        return (1, None, False)
    return (0, None, False)


def check_options(config_cls: type, options: dict, flag: str, what: str,
                  ranges: dict | None = None) -> None:
    """Raise ConfigError unless every key of `options` is a field of `config_cls` with a
    value of its annotated type, inside its range (`ranges`, else the Config's
    ``option_ranges``, else the range inferred from the default)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    explicit = getattr(config_cls, "option_ranges", {}) if ranges is None else ranges
    for key, value in options.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{what} has no option {flag} {key}.{hint} valid options: {', '.join(sorted(fields))}")
        expected = hints.get(key, Any)
        if not _matches(value, expected):
            raise ConfigError(f"{flag} {key}={shown(value)} has the wrong type: {key} must be {_words(expected)}"
                              f" (default {shown(fields[key].default)})")
        if key in explicit:
            low, high, *rest = explicit[key]
            strict = bool(rest and rest[0])
        else:
            low, high, strict = _inferred_range(fields[key])
        for number in _numbers(value):
            if (low is not None and (number <= low if strict else number < low)) or (high is not None and number > high):
                raise ConfigError(f"{flag} {key}={shown(value)} is out of range: {key} must be "
                                  f"{_range_words(low, high, strict)} ({_words(expected)}; "
                                  f"default {shown(fields[key].default)})")


def check_train_options(options: dict) -> None:
    check_options(TrainConfig, options, "-t", "training", ranges=TRAIN_RANGES)


def build_config(config_cls: type, options: dict, flag: str, what: str):
    """A Config instance from already checked options; a ValueError/TypeError from the
    Config's own ``__post_init__`` becomes one ConfigError line naming the options."""
    try:
        return config_cls(**options)
    except (TypeError, ValueError) as err:
        given = " ".join(f"{flag} {k}={shown(v)}" for k, v in sorted(options.items()))
        raise ConfigError(f"{what}: {err} (options {given or 'none'})".replace("\n", " ")) from None
