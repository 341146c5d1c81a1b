"""`dgmbench run` end to end: one record with the full protocol, resume after a kill,
no duplicate records, helpful errors, leaderboard and LaTeX output."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgmbench.cli import main
from dgmbench.results import ResultsStore


LIKELIHOOD_ONLY = ["-e", 'metrics=["exact_likelihood", "elbo_iwae"]']  # keeps these tests fast


def dgmbench(tmp_path, *args) -> int:
    return main(["run", *args, *LIKELIHOOD_ONLY, "--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work"), "--no-progress"])


def test_run_records_metrics_and_full_protocol(tmp_path, capsys):
    assert dgmbench(tmp_path, "--model", "vae", "--dataset", "digits/binary", "--epochs", "2",
                    "-o", "latent=4", "-o", "hidden=32", "-e", "iwae_k=50", "--seed", "3") == 0
    (record,) = ResultsStore(tmp_path / "results").load()
    metrics = {m["name"]: m for m in record["metrics"]}
    assert {"neg_elbo", "recon_nll", "kl", "iwae_nll"} <= set(metrics)
    assert metrics["iwae_nll"]["protocol"]["k"] == 50 and metrics["iwae_nll"]["n"] == 360
    assert metrics["neg_elbo"]["value"] == pytest.approx(metrics["recon_nll"]["value"] + metrics["kl"]["value"])
    assert record["seed"] == 3 and record["board"] == "digits/binary"
    assert record["model_config"]["latent"] == 4 and record["train_config"]["epochs"] == 2
    for key in ("commit", "dirty"):
        assert key in record["git"]
    assert record["versions"]["torch"] and record["device"]["type"] == "cpu"
    assert record["training"]["epochs_completed"] == 2 and record["wall_seconds"] > 0
    assert record["command"].startswith("dgmbench run --model vae --dataset digits/binary --seed 3")
    assert Path(record["samples"]).exists()

    # the same command again: reported, not recorded twice
    assert dgmbench(tmp_path, "--model", "vae", "--dataset", "digits/binary", "--epochs", "2",
                    "-o", "latent=4", "-o", "hidden=32", "-e", "iwae_k=50", "--seed", "3") == 0
    assert "already recorded" in capsys.readouterr().out
    assert len(ResultsStore(tmp_path / "results").load()) == 1


def test_recorded_command_reproduces_the_run(tmp_path):
    dgmbench(tmp_path, "--model", "fvsbn", "--dataset", "digits/binary", "--epochs", "2", "--seed", "1")
    (first,) = ResultsStore(tmp_path / "results").load()
    import shlex

    words = shlex.split(first["command"])[2:]  # drop "dgmbench run"
    other = tmp_path / "again"
    assert main(["run", *words, "--results-dir", str(other / "results"), "--workdir", str(other / "work"), "--no-progress"]) == 0
    (second,) = ResultsStore(other / "results").load()
    assert second["run_key"] == first["run_key"]
    assert second["metrics"][0]["value"] == pytest.approx(first["metrics"][0]["value"], abs=1e-6)


def test_unknown_names_list_the_valid_ones(tmp_path, capsys):
    assert dgmbench(tmp_path, "--model", "nad", "--dataset", "digits") == 2
    err = capsys.readouterr().err
    assert "unknown model 'nad'" in err and "Did you mean 'nade'" in err and "vae" in err
    assert dgmbench(tmp_path, "--model", "nade", "--dataset", "digitz") == 2
    assert "unknown dataset 'digitz'" in capsys.readouterr().err
    assert dgmbench(tmp_path, "--model", "nade", "--dataset", "digits/grey") == 2
    assert "valid variants: binary" in capsys.readouterr().err
    assert dgmbench(tmp_path, "--model", "nade", "--dataset", "digits", "-o", "hiden=3") == 2
    assert "valid options: hidden" in capsys.readouterr().err.replace(", ordering", "")


def test_a_run_killed_mid_way_resumes_and_writes_exactly_one_record(tmp_path):
    args = [sys.executable, "-m", "dgmbench.cli", "run", "--model", "nade", "--dataset", "digits/binary",
            "--epochs", "30", "-o", "hidden=8", "-t", "patience=none", "--no-progress", *LIKELIHOOD_ONLY,
            "--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.time() + 120
    while not list((tmp_path / "work").glob("runs/*/last.pt")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not ResultsStore(tmp_path / "results").load(), "killed before finishing, so no record"

    finished = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stdout
    (record,) = ResultsStore(tmp_path / "results").load()
    assert record["training"]["resumed_from_epoch"] >= 1
    assert record["training"]["epochs_completed"] == 30

    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "already recorded" in again.stdout
    assert len(ResultsStore(tmp_path / "results").load()) == 1


def test_leaderboard_aggregates_seeds_and_shows_published_rows(tmp_path, capsys):
    for seed in ("0", "1"):
        dgmbench(tmp_path, "--model", "fvsbn", "--dataset", "digits/binary", "--epochs", "2", "--seed", seed)
    records = ResultsStore(tmp_path / "results").load()
    values = [next(m["value"] for m in r["metrics"] if m["name"] == "nll") for r in records]
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "x.toml").write_text(
        '[[result]]\nmodel = "fvsbn"\nlabel = "FVSBN (Someone 2000)"\nboard = "digits/binary"\nmetric = "nll"\n'
        'value = 12.5\nunit = "nats"\nkind = "exact"\ncitation = "Someone (2000). A paper."\nprotocol = "p"\n')
    capsys.readouterr()
    main(["leaderboard", "--dataset", "digits", "--results-dir", str(tmp_path / "results"), "--baselines-dir", str(baselines)])
    out = capsys.readouterr().out
    import numpy as np

    assert f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}" in out
    assert "| FVSBN (Someone 2000) [1] | published |" in out and "[1] Someone (2000). A paper." in out
    main(["leaderboard", "--dataset", "digits/binary", "--format", "latex", "--results-dir", str(tmp_path / "results"),
          "--baselines-dir", str(baselines)])
    latex = capsys.readouterr().out
    assert r"\toprule" in latex and r"\bottomrule" in latex and r"$^\dagger$" in latex and r"$\pm$" in latex


def test_toml_config_file(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('[run]\nmodel = "bernoulli_mixture"\ndataset = "digits/binary"\nseed = 2\n'
                      '[model]\ncomponents = 3\n[train]\nepochs = 2\n')
    assert main(["run", "--config", str(config), *LIKELIHOOD_ONLY, "--results-dir", str(tmp_path / "r"), "--workdir", str(tmp_path / "w"),
                 "--no-progress"]) == 0
    (record,) = ResultsStore(tmp_path / "r").load()
    assert record["model_config"]["components"] == 3 and record["seed"] == 2
    assert json.loads(json.dumps(record))  # plain JSON


def test_quick_suite_trains_into_a_local_store_and_prints_the_leaderboard(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--models", "fvsbn,bernoulli_mixture", "--no-progress", *LIKELIHOOD_ONLY]) == 0
    out = capsys.readouterr().out
    records = ResultsStore(tmp_path / ".dgmbench" / "quick-results").load()
    assert sorted(r["model"] for r in records) == ["bernoulli_mixture", "fvsbn"]
    assert all(r["suite"] == "quick" for r in records)
    assert "quick suite: 2 runs" in out and "| fvsbn (quick) | ours | 1 |" in out
    assert not (tmp_path / "results").exists()
    assert main(["run", "--models", "fvsbn,nad"]) == 2  # unknown names list the valid ones
