"""`dgmbench reproduce`: every reproduction in baselines/ resolves to a valid model and
training configuration and takes one training step; the run key follows the protocol;
listing, unknown names, the record's link to the baseline, status and the leaderboard's
published-beside-ours column (checked against the record's own numbers)."""
from __future__ import annotations

import dataclasses
import io
import math
import textwrap

import pandas as pd
import pytest
import torch

from dgmbench.cli import main
from dgmbench.reproduce import combined, load_reproductions
from dgmbench.results import ResultsStore
from dgmbench.runner import planned_run_key, resolve, validate

REPRODUCTIONS = load_reproductions()
# No CIFAR-10 copy exists offline: the cifar10 reproductions resolve and train one step on fake
# batch files in tests/test_cifar10_reproductions.py instead.
OFFLINE_DATA = sorted(name for name, repro in REPRODUCTIONS.items() if not repro.board.startswith("cifar10/"))
# one step of these takes longer than a few seconds on one CPU thread (measured: PixelCNN
# 31 s per 16 images, the Diagonal BiLSTM 8 s; the 2 x 8000 MADE builds 76M weights)
HEAVY = {"pixelcnn_mnist", "made_2x8000_32masks", "diagonal_bilstm_mnist"}


def test_every_published_result_with_a_reproduce_table_is_listed():
    assert {"mob_500", "fvsbn", "nade_500", "rbm_cd25", "made_1x8000_1mask", "made_2x8000_32masks",
            "dbm_sh2009", "pixelcnn_mnist", "diagonal_bilstm_mnist"} <= set(REPRODUCTIONS)
    for repro in REPRODUCTIONS.values():
        assert repro.tolerance > 0 and repro.cpu_hours > 0 and repro.gpu_hours > 0 and repro.estimate
        assert repro.source and "/" in repro.board  # a dataset/variant board


@pytest.mark.parametrize("name", OFFLINE_DATA)
def test_reproduction_resolves_to_a_valid_configuration(name):
    repro = REPRODUCTIONS[name]
    spec = repro.spec(device="cpu")
    validate(spec)  # names, types and ranges of every option, as `dgmbench run` checks them
    cls, dataset, model_config, train_config = resolve(spec)
    assert dataset.info.board == repro.board
    for key, value in repro.model_options.items():
        got = getattr(model_config, key)
        assert (list(got) if isinstance(got, tuple) else got) == value
    for key, value in repro.train_options.items():
        assert getattr(train_config, key) == value


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in OFFLINE_DATA])
def test_reproduction_takes_one_training_step_on_a_tiny_slice(name):
    repro = REPRODUCTIONS[name]
    cls, dataset, model_config, train_config = resolve(repro.spec(device="cpu"))
    torch.manual_seed(0)
    model = cls(model_config, dataset.info)
    x = dataset.split("train")[:8]
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    scalars = model.training_step(x, model.configure_optimizers(train_config), train_config)
    assert scalars and all(math.isfinite(v) for v in scalars.values())
    changed = [k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed, "one training step changed no parameter"


def test_a_changed_protocol_field_changes_the_run_key():
    repro = REPRODUCTIONS["fvsbn"]
    spec = repro.spec(device="cpu")
    key = planned_run_key(spec)
    assert planned_run_key(spec) == key  # deterministic
    changed = [
        dataclasses.replace(spec, train_options={**spec.train_options, "epochs": 201}),
        dataclasses.replace(spec, train_options={**spec.train_options, "lr": 0.004}),
        dataclasses.replace(spec, model_options={"ordering": "random"}),
        dataclasses.replace(spec, eval_options={"metrics": ["exact_likelihood"], "batch_size": 50}),
        dataclasses.replace(spec, reproduces={**spec.reproduces, "name": "another"}),
        dataclasses.replace(spec, reproduces=None),  # the same options as a plain `dgmbench run`
    ]
    keys = {planned_run_key(s) for s in changed}
    assert key not in keys and len(keys) == len(changed)
    # the published value and tolerance are not part of the experiment: same run
    same = dataclasses.replace(spec, reproduces={**spec.reproduces, "published": 1.0, "tolerance": 9.0})
    assert planned_run_key(same) == key


def test_listing_shows_every_reproduction_with_hours_and_gpu_mark(tmp_path, capsys):
    assert main(["reproduce", "--results-dir", str(tmp_path), "--workdir", str(tmp_path / "work")]) == 0
    out = capsys.readouterr().out
    for name, repro in REPRODUCTIONS.items():
        (line,) = [l for l in out.splitlines() if l.startswith(name + " ")]
        assert f"{repro.cpu_hours:.1f}" + ("*" if repro.gpu_only else "") in line and "not run" in line
    assert "GPU-only" in out


def test_unknown_name_is_one_line_listing_the_valid_names(capsys):
    assert main(["reproduce", "no_such_paper"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_paper" in err and "fvsbn" in err and "mob_500" in err


def test_standard_error_of_the_mean_over_seeds_keeps_the_shared_test_set_error():
    mean, se = combined([100.0, 102.0], [0.3, 0.5])
    assert mean == 101.0
    assert se == pytest.approx(math.sqrt((0.09 + 0.25) / 2 + 2.0 / 2))  # mean test var + seed var / n
    assert combined([100.0], [0.3]) == (100.0, 0.3)


BASELINE = """
[[result]]
model = "fvsbn"
label = "FVSBN on digits (test row)"
board = "digits/binary"
metric = "nll"
value = {value}
unit = "nats"
kind = "exact"
citation = "A test citation (2000). Title."
protocol = "test"

[result.reproduce]
name = "fvsbn_digits"
model = "fvsbn"
train_options = {{ epochs = 2, batch_size = 50, lr = 0.01 }}
eval_options = {{ metrics = ["exact_likelihood"] }}
source = "Table 1, p. 1"
cpu_hours = 0.001
gpu_hours = 0.001
estimate = "measured"
tolerance = {tolerance}
{extra}
"""


def _baselines(path, value, tolerance, extra=""):
    path.mkdir(exist_ok=True)
    (path / "test.toml").write_text(textwrap.dedent(BASELINE.format(value=value, tolerance=tolerance, extra=extra)))
    return path


def test_reproduce_records_the_link_resumes_and_reports_status(tmp_path, capsys):
    baselines = _baselines(tmp_path / "baselines", 20.0, 1.0)
    args = ["reproduce", "fvsbn_digits", "--baselines-dir", str(baselines), "--results-dir", str(tmp_path / "results"),
            "--workdir", str(tmp_path / "work"), "--no-progress"]
    assert main(args) == 0
    (record,) = ResultsStore(tmp_path / "results").load()
    assert record["reproduces"]["name"] == "fvsbn_digits" and record["reproduces"]["published"] == 20.0
    assert record["command"] == "dgmbench reproduce fvsbn_digits"
    assert record["training"]["epochs_completed"] == 2 and len(record["training"]["history"]) == 2
    nll = next(m for m in record["metrics"] if m["name"] == "nll")
    assert main(args) == 0  # the same command again: the recorded run, not a second record
    assert "already recorded" in capsys.readouterr().out
    assert len(ResultsStore(tmp_path / "results").load()) == 1

    from dgmbench.report import build_leaderboards, load_baselines, load_results, render, reproductions_frame

    def view(tolerance, extra=""):
        _baselines(baselines, 20.0, tolerance, extra)
        return reproductions_frame(tmp_path / "results", baselines, tmp_path / "work").set_index("reproduction")

    gap = nll["value"] - 20.0
    frame = view(abs(gap) + 0.5)
    assert frame.at["fvsbn_digits", "gap"] == pytest.approx(gap)
    assert frame.at["fvsbn_digits", "gap_se"] == pytest.approx(nll["stderr"])
    assert frame.at["fvsbn_digits", "status"] == "reproduced within tolerance"
    assert view(abs(gap) / 2).at["fvsbn_digits", "status"] == "gap unexplained"
    explained = view(abs(gap) / 2, 'explanation = "learning curve still falling"')
    assert explained.at["fvsbn_digits", "status"] == "gap explained"

    boards = build_leaderboards(load_results(tmp_path / "results"), load_baselines(baselines), "digits/binary",
                                metrics=["nll"])
    table = boards["digits/binary"]
    (row,) = [r for r in table.rows.index if table.rows.at[r, "source"] == "ours"]
    assert table.reproductions.at[row, "gap"] == pytest.approx(gap)
    text = render(boards, "markdown")
    assert "Published (gap ± se)" in text and f"20.00 ({gap:+.2f} ± {nll['stderr']:.2f})" in text
    csv = pd.read_csv(io.StringIO(render(boards, "csv")))
    ours = csv[csv.source == "ours"].iloc[0]
    assert ours.published == 20.0 and ours.gap == pytest.approx(gap)
    assert "Published (gap" in render(boards, "html") and "Published (gap" in render(boards, "latex")

    assert main(["leaderboard", "--reproductions", "--results-dir", str(tmp_path / "results"),
                 "--baselines-dir", str(baselines)]) == 0
    assert "fvsbn_digits" in capsys.readouterr().out

    # the protocol changed in baselines/ (3 epochs): the 2-epoch record no longer reproduces it
    _baselines(baselines, 20.0, 1.0)
    changed = (baselines / "test.toml").read_text().replace("epochs = 2,", "epochs = 3,")
    (baselines / "test.toml").write_text(changed)
    frame = reproductions_frame(tmp_path / "results", baselines, tmp_path / "work").set_index("reproduction")
    assert frame.at["fvsbn_digits", "status"] == "not run"
    # ... and the leaderboard no longer sets it beside the published number
    boards = build_leaderboards(load_results(tmp_path / "results"), load_baselines(baselines), "digits/binary",
                                metrics=["nll"])
    assert boards["digits/binary"].reproductions.empty
    assert "Published (gap" not in render(boards, "markdown")


def test_leaderboard_without_reproductions_has_no_extra_column(tmp_path):
    from dgmbench.report import build_leaderboards, load_baselines, render

    results = pd.DataFrame({"board": ["digits/binary"], "model": ["fvsbn"], "metric": ["nll"], "value": [30.0],
                            "config_hash": ["a"], "seed": [0], "created": [pd.Timestamp("2026-01-01", tz="UTC")],
                            "record": ["r"], "suite": ["full"], "family": ["autoregressive"],
                            "value_type": ["binary"], "unit": ["nats"], "kind": ["exact"], "higher_is_better": [False],
                            "model_config": [{}], "train_config": [{}], "eval_settings": [{}], "source": ["ours"],
                            "extractor": [None], "interval_low": [float("nan")], "interval_high": [float("nan")]})
    boards = build_leaderboards(results, load_baselines(_baselines(tmp_path / "b", 20.0, 1.0)), "digits/binary")
    assert "Published (gap" not in render(boards, "markdown")


def test_reproduction_status_shows_the_interim_value_and_how_to_continue(tmp_path, monkeypatch, capsys):
    from test_stop_after_hours import clock_jumping_by

    from dgmbench.reproduce import statuses

    baselines = _baselines(tmp_path / "baselines", 20.0, 1.0)
    args = ["reproduce", "fvsbn_digits", "--baselines-dir", str(baselines), "--results-dir", str(tmp_path / "results"),
            "--workdir", str(tmp_path / "work"), "--no-progress", "--stop-after-hours", "1"]
    monkeypatch.setattr("dgmbench.runner.time", clock_jumping_by(7200.0))
    assert main(args) == 0
    monkeypatch.undo()
    assert "paused" in capsys.readouterr().out
    (interim,) = ResultsStore(tmp_path / "results").load_interim()
    state = statuses(load_reproductions(baselines), tmp_path / "results", tmp_path / "work")["fvsbn_digits"]
    nll = next(m["value"] for m in interim["metrics"] if m["name"] == "nll")
    assert state.status == "running or interrupted" and state.ours == pytest.approx(nll)
    assert state.epochs == 1 and "continue with: dgmbench reproduce fvsbn_digits --results-dir" in state.detail
    assert state.detail.endswith("--stop-after-hours 1")
