"""scripts/evaluate_checkpoint.py: scoring the checkpoint a record evaluated reproduces the
record's numbers (the same protocol, the same sample seed); another checkpoint gets scored
under that protocol; bad input is one line."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dgmbench.cli import main as dgmbench_main
from dgmbench.results import ResultsStore

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_checkpoint.py"


def _script():
    spec = importlib.util.spec_from_file_location("evaluate_checkpoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _printed(out: str) -> dict[str, float]:
    return {line.split(" = ")[0].strip(): float(line.split(" = ")[1].split()[0])
            for line in out.splitlines() if " = " in line}


def test_the_evaluated_checkpoint_reproduces_the_record_and_another_is_scored_alike(tmp_path, capsys):
    # a sample-based metric (Parzen), where the record's seed decides the samples
    assert dgmbench_main(["run", "--model", "aae", "--dataset", "digits/binary", "--epochs", "3",
                          "-o", "latent=2", "-o", "hidden=32", "-o", "discriminator_hidden=16",
                          "-e", 'metrics=["parzen_ll"]', "-e", "parzen_samples=300",
                          "--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work"),
                          "--no-progress"]) == 0
    (record,) = ResultsStore(tmp_path / "results").load()
    record_path = Path(record["_path"])
    (run_dir,) = (tmp_path / "work" / "runs").iterdir()
    capsys.readouterr()
    script = _script()
    assert script.main([str(record_path), str(run_dir / "best.pt")]) == 0
    recorded = {m["name"]: m["value"] for m in record["metrics"]}
    assert _printed(capsys.readouterr().out)["parzen_ll"] == pytest.approx(recorded["parzen_ll"], rel=1e-5)

    assert script.main([str(record_path), str(run_dir / "last.pt"), "-e", "parzen_samples=200"]) == 0
    out = capsys.readouterr().out
    assert "settings changed: parzen_samples=200" in out and "parzen_ll" in _printed(out)


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    record = tmp_path / "r.json"
    record.write_text('{"model": "fvsbn", "board": "digits/binary", "model_config": {}, '
                      '"eval_settings": {}, "seed": 0}')
    assert _script().main([str(record), str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evaluate_checkpoint:") and "nope.pt" in err and "\n" not in err
