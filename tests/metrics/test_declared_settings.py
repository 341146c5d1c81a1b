"""Issue 8 item 3: every -e setting is declared by the metric that reads it, and unknown
keys or bad values fail before any work, naming what is valid."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dgmbench
from dgmbench.metrics.base import (
    GLOBAL_SETTINGS,
    METRICS,
    EvalContext,
    Setting,
    SettingError,
    UndeclaredSettingError,
    declared_settings,
    evaluate,
    validate_eval_settings,
)

PACKAGE = Path(dgmbench.__file__).parent


def _setting_reads(path: Path) -> list[tuple[str, int]]:
    """(key, line) of every `<anything>.setting("key", ...)` call in a source file."""
    reads = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setting"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            reads.append((node.args[0].value, node.lineno))
    return reads


def test_every_setting_read_in_the_package_is_declared():
    declared = set(GLOBAL_SETTINGS)
    for _, metric in METRICS.items():
        declared |= set(declared_settings(metric))
    undeclared = [f"{path.relative_to(PACKAGE)}:{line} {key}"
                  for path in sorted(PACKAGE.rglob("*.py")) for key, line in _setting_reads(path) if key not in declared]
    assert not undeclared, f"ctx.setting keys no metric declares: {undeclared}"
    assert any(key == "iwae_k" for key, _ in _setting_reads(PACKAGE / "metrics" / "likelihood.py"))


def test_every_metric_declares_settings_with_descriptions():
    for name, metric in METRICS.items():
        assert isinstance(getattr(metric, "settings", None), dict), f"metric {name} declares no settings dict"
        for key, spec in declared_settings(metric).items():
            assert spec.description, f"{name}.{key} has no description"


class _Reads:
    name = "reads_undeclared"
    settings = {"declared_k": Setting(int, "a declared key", minimum=1)}

    def applies(self, model, dataset):
        return True

    def __call__(self, model, dataset, ctx):
        ctx.setting("declared_k", 1)
        ctx.setting("batch_size", 1)  # global keys may be read by every metric
        ctx.setting("not_declared", 3)
        return []


class _Model:
    def eval(self):
        return self


def test_reading_an_undeclared_key_during_evaluation_fails(monkeypatch):
    monkeypatch.setitem(METRICS._items, _Reads.name, _Reads())
    ctx = EvalContext()
    with pytest.raises(UndeclaredSettingError, match="not_declared"):
        evaluate(_Model(), None, ctx, only=[_Reads.name])
    assert ctx._reader is None  # the reading metric is cleared even when it fails
    assert ctx.setting("not_declared", 3) == 3  # outside evaluate(): a plain lookup


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"iwae_kk": 5}, r"unknown evaluation setting -e iwae_kk\. Did you mean 'iwae_k'\? Valid settings: .*iwae_k"),
        ({"iwae_k": 0}, r"-e iwae_k=0 is out of range: iwae_k must be an integer >= 1 \(importance samples"),
        ({"iwae_k": "many"}, r"-e iwae_k=\"many\" has the wrong type"),
        ({"iwae_k": 2.5}, r"wrong type.*integer"),
        ({"iwae_k": True}, r"wrong type"),
        ({"ais_temperatures": 2}, r"must be an integer >= 3"),
        ({"parzen_sigmas": [0.1, 0.0]}, r"list of numbers > 0"),
        ({"fid_reference_split": "tset"}, r"one of 'train', 'valid', 'test'"),
        ({"batch_size": 0}, r"batch_size .* >= 1"),
        ({"memorization_samples": None}, r"none is not allowed"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_what_is_valid(settings, message):
    with pytest.raises(SettingError, match=message) as err:
        validate_eval_settings(settings)
    assert "\n" not in str(err.value)


def test_unknown_metric_name_in_metrics_setting_fails():
    with pytest.raises(LookupError, match="unknown metric 'elbo_iwea'.*Did you mean 'elbo_iwae'"):
        validate_eval_settings({"metrics": ["elbo_iwea"]})


def test_good_settings_pass():
    validate_eval_settings({"iwae_k": 5, "metrics": ["elbo_iwae"], "parzen_sigmas": [0.1, 1], "parzen_examples": None,
                            "inception": False, "batch_size": 50, "fid_reference_split": "valid"})
