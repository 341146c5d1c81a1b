"""`dgmbench check`: passes on an unchanged tree, fails when a model is deliberately degraded."""
from __future__ import annotations

import torch

from dgmbench.check import compare
from dgmbench.cli import main
from dgmbench.models.autoregressive.fvsbn import FVSBN


def _record(value, stderr=None, seed=0, key="k0", group="g", higher=False):
    return {"run_key": key, "config_hash": group, "model": "m", "seed": seed, "board": "b",
            "metrics": [{"name": "nll", "value": value, "stderr": stderr, "higher_is_better": higher}]}


def test_tolerance_comes_from_standard_errors_seed_spread_and_a_relative_floor():
    # standard errors 0.1 each: tol = 3 * sqrt(0.02) = 0.424
    assert compare([_record(10.4, 0.1)], [_record(10.0, 0.1)], z=3, rtol=0)[0].verdict == "ok"
    assert compare([_record(10.5, 0.1)], [_record(10.0, 0.1)], z=3, rtol=0)[0].verdict == "regression"
    assert compare([_record(9.5, 0.1)], [_record(10.0, 0.1)], z=3, rtol=0)[0].verdict == "improved"
    # seed spread of the committed group (sd 1.0) widens it to 3.0
    committed = [_record(10.0, 0.1, 0, "k0"), _record(11.0, 0.1, 1, "k1"), _record(9.0, 0.1, 2, "k2")]
    assert compare([_record(12.9, 0.1)], committed, z=3, rtol=0)[0].verdict == "ok"
    # no uncertainty recorded: only the relative floor
    assert compare([_record(10.4)], [_record(10.0)], z=3, rtol=0.05)[0].verdict == "ok"
    assert compare([_record(10.6)], [_record(10.0)], z=3, rtol=0.05)[0].verdict == "regression"
    # direction follows higher_is_better
    assert compare([_record(9.0, higher=True)], [_record(10.0, higher=True)], rtol=0.05)[0].verdict == "regression"
    assert compare([_record(1.0, key="other")], [_record(1.0)])[0].verdict == "new"


def test_a_record_from_another_cpu_lists_a_worse_metric_without_failing():
    def on(cpu, value):
        return {**_record(value), "device": {"cpu": cpu}}

    assert compare([on("Intel Xeon", 10.6)], [on("Intel Xeon", 10.0)], rtol=0.05)[0].verdict == "regression"
    assert compare([on("Intel Xeon", 10.6)], [on("AMD EPYC", 10.0)], rtol=0.05)[0].verdict == "other cpu"
    assert compare([on("Intel Xeon", 9.4)], [on("AMD EPYC", 10.0)], rtol=0.05)[0].verdict == "improved"
    missing = {**_record(None), "device": {"cpu": "Intel Xeon"}}
    assert compare([missing], [on("AMD EPYC", 10.0)])[0].verdict == "not finite"  # still fails


def test_check_passes_unchanged_and_fails_when_a_model_is_degraded(tmp_path, monkeypatch, capsys):
    base = tmp_path / "committed"
    assert main(["run", "--models", "fvsbn", "--results-dir", str(base), "--workdir", str(tmp_path / "w"),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["check", "--models", "fvsbn", "--against", str(base), "--no-progress"]) == 0
    assert "0 regressions" in capsys.readouterr().out

    original = FVSBN.log_prob
    monkeypatch.setattr(FVSBN, "log_prob", lambda self, x: original(self, x) - 5.0)  # 5 nats worse
    assert main(["check", "--models", "fvsbn", "--against", str(base), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "regression" in out and "fvsbn" in out and " nll" in out
