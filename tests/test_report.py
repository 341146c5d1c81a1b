"""The pandas results API and the leaderboards built from it.

Ground truths: the committed record files read with plain `json` (load_results must
round-trip every record and metric), numpy means/stds computed here from a synthetic
store, the AIS log Z +- 3 sd recorded in a metric's protocol, and pdflatex (where
installed; otherwise the booktabs structure is checked line by line).
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dgmbench
from dgmbench.cli import main
from dgmbench.report import build_leaderboards, cell_text, header_text, render
from dgmbench.results_frame import cite_key, load_baselines, load_results

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
BASELINES = REPO / "baselines"
DBM_RECORD = "dbm__digits__binary__seed0__8711c2231bff"  # quick-suite DBM: -VLB, AIS below the exact NLL


# --- load_results ---------------------------------------------------------------------------


def test_load_results_round_trips_every_committed_record():
    frame = dgmbench.load_results(RESULTS)
    files = sorted((RESULTS / "records").glob("*.json"))
    assert files and set(frame.record) == {f.stem for f in files}
    assert len(frame) == sum(len(json.loads(f.read_text())["metrics"]) for f in files)
    rows = frame.set_index(["record", "metric"])
    assert rows.index.is_unique
    for path in files:
        record = json.loads(path.read_text())
        for metric in record["metrics"]:
            row = rows.loc[(path.stem, metric["name"])]
            for column, expected in (("model", record["model"]), ("board", record["board"]),
                                     ("seed", record["seed"]), ("config_hash", record["config_hash"]),
                                     ("run_key", record["run_key"]), ("family", record["family"]),
                                     ("command", record["command"]), ("commit", record["git"]["commit"]),
                                     ("unit", metric["unit"]), ("kind", metric["kind"]),
                                     ("higher_is_better", metric["higher_is_better"]), ("n", metric["n"]),
                                     ("epochs", record["training"]["epochs_completed"])):
                assert row[column] == expected, (path.name, metric["name"], column)
            for column in ("value", "stderr"):
                expected = metric[column]
                if expected is None or (isinstance(expected, float) and math.isnan(expected)):
                    assert math.isnan(row[column])
                else:
                    assert row[column] == expected  # bit-identical: nothing rounded on the way
            assert row["protocol"] == metric.get("protocol", {})
            assert row["suite"] == ("quick" if record["suite"] == "quick" else "full")
            assert row["created"] == pd.Timestamp(record["created"])


def test_load_results_of_an_empty_store_has_the_columns(tmp_path):
    frame = load_results(tmp_path)
    assert frame.empty and {"model", "board", "seed", "metric", "value", "unit", "kind", "commit"} <= set(frame.columns)


def test_baselines_frame_and_cite_keys():
    published = load_baselines(BASELINES)
    entries = [e for p in sorted(BASELINES.glob("*.toml")) for e in tomllib.loads(p.read_text()).get("result", [])]
    assert len(published) == len(entries) and (published.source == "published").all()
    assert published.value.tolist() == [float(e["value"]) for e in entries]
    assert cite_key("van den Oord, A., Kalchbrenner, N. & Kavukcuoglu, K. (2016). Pixel Recurrent Neural "
                    "Networks. ICML.") == "vandenoord2016pixel"
    assert cite_key("Salakhutdinov, R. & Hinton, G. (2009). Deep Boltzmann Machines. AISTATS.") == "salakhutdinov2009deep"


# --- aggregation against numpy on a synthetic store --------------------------------------


def _record(store: Path, model: str, seed: int, values: dict, chash: str = "c" * 64, created: str = "2026-01-01T00:00:00+00:00",
            board: str = "digits/binary", family: str = "autoregressive", attempt: str = "") -> None:
    metrics = [{"name": name, "value": value, "unit": "nats" if name == "nll" else "", "stderr": None,
                "kind": "exact" if name == "nll" else "score", "n": 10, "higher_is_better": name == "precision",
                "protocol": {"extractor": "digits-cnn", "layer": "penultimate", "feature_dim": 128}
                if name in ("fid", "kid", "precision") else {}} for name, value in values.items()]
    record = {"schema": 1, "run_key": f"{model}{seed}{attempt}".ljust(64, "0"), "config_hash": chash, "model": model,
              "family": family, "dataset": board.split("/")[0], "variant": board.split("/")[1], "board": board,
              "suite": None, "seed": seed, "model_config": {"hidden": 8 if chash == "c" * 64 else 16},
              "train_config": {"epochs": 2, "seed": seed}, "eval_settings": {}, "metrics": metrics,
              "training": {"epochs_completed": 2, "history": [], "train_seconds": 1.0}, "wall_seconds": 2.0,
              "command": f"dgmbench run --model {model} --seed {seed}", "created": created,
              "git": {"commit": "abc", "dirty": False}, "samples": ""}
    (store / "records").mkdir(parents=True, exist_ok=True)
    name = f"{model}__{board.replace('/', '__')}__seed{seed}__{chash[:6]}{attempt}.json"
    (store / "records" / name).write_text(json.dumps(record))


@pytest.fixture
def synthetic(tmp_path):
    store = tmp_path / "results"
    nll = {0: 20.0, 1: 21.5, 2: 19.25}
    for seed, value in nll.items():
        _record(store, "made", seed, {"nll": value, "fid": 10.0 + seed, "kid": 0.004 * (seed + 1), "precision": 0.5})
    # a repeat of seed 2 recorded later: the latest repeat counts
    _record(store, "made", 2, {"nll": 18.0, "fid": 12.0, "kid": 0.012, "precision": 0.5},
            created="2026-02-01T00:00:00+00:00", attempt="__1")
    nll[2] = 18.0
    _record(store, "nade", 0, {"nll": 22.0, "fid": 9.0, "kid": 0.002, "precision": 0.7}, chash="d" * 64)
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "x.toml").write_text(
        '[[result]]\nmodel = "made"\nlabel = "MADE (Someone 2000)"\nboard = "digits/binary"\nmetric = "nll"\n'
        'value = 17.5\nunit = "nats"\nkind = "exact"\ncitation = "Someone, A. (2000). Masked things. Venue."\n'
        'protocol = "p"\n')
    return store, baselines, nll


def test_leaderboard_is_mean_and_std_over_seeds_with_best_in_bold(synthetic):
    store, baselines, nll = synthetic
    boards = build_leaderboards(load_results(store), load_baselines(baselines))
    table = boards["digits/binary"]
    made = table.rows.index[table.rows.model == "made"][0]
    values = np.array(list(nll.values()))
    assert table.mean.at[made, "nll"] == pytest.approx(values.mean())
    assert table.std.at[made, "nll"] == pytest.approx(values.std(ddof=1))
    assert table.rows.at[made, "seeds"] == 3
    assert cell_text(table, made, "nll") == f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"
    # published row: below ours, marked, best NLL (17.5) in bold; best FID is nade's 9.00
    assert list(table.rows.source) == ["ours", "ours", "published"]
    markdown = render(boards, "markdown")
    assert "| MADE (Someone 2000) [1] | published |  |  | **17.50** |" in markdown
    assert "**9.00**" in markdown and "[1] Someone, A. (2000). Masked things. Venue. Protocol: p" in markdown
    assert "**0.700**" in render(build_leaderboards(load_results(store), None, all_metrics=True), "markdown")  # higher is better
    csv = pd.read_csv(pd.io.common.StringIO(render(boards, "csv")))
    row = csv[(csv.model == "made") & (csv.metric == "nll") & (csv.source == "ours")].iloc[0]
    assert row["mean"] == pytest.approx(values.mean()) and row["seeds"] == 3 and row["kind"] == "exact"


def test_configurations_are_never_merged_even_when_their_labels_would_coincide(tmp_path):
    """Two configurations differing only in the 5th differing option: two rows, two labels."""
    store = tmp_path / "results"
    base = {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}
    for i, (chash, config) in enumerate([("1" * 64, base), ("2" * 64, {**base, "a": 2, "b": 2, "c": 2, "d": 2}),
                                          ("3" * 64, {**base, "a": 2, "b": 2, "c": 2, "d": 2, "e": 2})]):
        _record(store, "dbm", 0, {"nll": 10.0 + i}, chash=chash)
        path = next((store / "records").glob(f"*{chash[:6]}.json"))
        record = json.loads(path.read_text())
        record["model_config"] = config
        path.write_text(json.dumps(record))
    table = build_leaderboards(load_results(store), None)["digits/binary"]
    assert sorted(table.mean.nll) == [10.0, 11.0, 12.0]  # nothing averaged across configurations
    labels = list(table.rows.label)
    # the two whose shown options coincide keep them and add what tells them apart
    assert len(set(labels)) == 3 and "dbm [a=2, b=2, c=2, d=2, ...; e=2]" in labels \
        and "dbm [a=2, b=2, c=2, d=2, ...; e=1]" in labels, labels


def test_metrics_and_models_select_columns_and_rows(synthetic):
    store, baselines, _ = synthetic
    boards = build_leaderboards(load_results(store), load_baselines(baselines), metrics=["fid", "nll"], models=["nade"])
    table = boards["digits/binary"]
    assert table.columns == ["fid", "nll"] and list(table.rows.model) == ["nade"]
    with pytest.raises(ValueError, match="no results for metric.*fid_x.*metrics with results: nll"):
        build_leaderboards(load_results(store), None, metrics=["fid_x"])
    with pytest.raises(ValueError, match="no results for model.*vae.*made, nade"):
        build_leaderboards(load_results(store), None, models=["vae"])


def test_cli_leaderboard_flags_and_one_line_errors(synthetic, capsys):
    store, baselines, _ = synthetic
    args = ["leaderboard", "--results-dir", str(store), "--baselines-dir", str(baselines)]
    assert main([*args, "--metrics", "nll,fid", "--models", "made,nade", "--format", "csv"]) == 0
    csv = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert set(csv.metric) == {"nll", "fid"} and set(csv.model) == {"made", "nade"}
    assert main([*args, "--metrics", "nll,bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bogus" in err and "metrics with results" in err


# --- issue 8 item 7: reports that cannot mislead ----------------------------------------------


def test_kid_header_names_scale_and_feature_space_and_notes_name_the_extractor(synthetic):
    store, _, _ = synthetic
    boards = build_leaderboards(load_results(store), None)
    table = boards["digits/binary"]
    # KIDs 0.002 .. 0.012: shown x10^3 so that they read 2 .. 12
    assert table.scales["kid"] == 3
    assert header_text(table, "kid") == "KID ×10^3 (digits-cnn features)"
    assert r"KID $\times 10^{3}$ (digits-cnn features)" in render(boards, "latex")
    nade = table.rows.index[table.rows.model == "nade"][0]
    assert cell_text(table, nade, "kid") == "2.00"
    notes = " ".join(table.notes)
    assert "Features on this board: digits-cnn (penultimate layer, 128-d)" in notes and "KID" in notes
    # the committed digits-cnn KIDs (values in the tens and hundreds) stay raw, and say so
    real = build_leaderboards(load_results(RESULTS), None, dataset="digits/binary")["digits/binary"]
    assert header_text(real, "kid") == "KID, raw MMD² (digits-cnn features)"
    assert "digits-cnn" in " ".join(real.notes)


def test_dbm_vlb_shows_the_interval_from_ais_log_z_and_is_called_an_estimate_of_a_bound():
    record = json.loads((RESULTS / "records" / f"{DBM_RECORD}.json").read_text())
    vlb = next(m for m in record["metrics"] if m["name"] == "vlb_nll")
    nll = next(m for m in record["metrics"] if m["name"] == "nll")
    assert vlb["value"] < nll["value"]  # the case the issue is about
    p = vlb["protocol"]
    low = vlb["value"] - (p["log_z"] - p["log_z_minus_3sd"])  # NLL-type values move with log Z
    high = vlb["value"] + (p["log_z_plus_3sd"] - p["log_z"])
    assert low < nll["value"] < high  # the exact NLL lies inside the interval
    frame = load_results(RESULTS)
    frame = frame[frame.record == DBM_RECORD]
    table = build_leaderboards(frame, None, metrics=["nll", "vlb_nll"])["digits/binary"]
    (row,) = table.rows.index
    # (the values come from the committed quick-suite record, regenerated with the code)
    assert cell_text(table, row, "vlb_nll") == f"{vlb['value']:.2f} [{low:.2f}, {high:.2f}]"
    assert header_text(table, "vlb_nll") == "-VLB, AIS (nats, estimate of a bound)"
    assert "estimate of a bound" in " ".join(table.notes) and "log Z ± 3 sd" in " ".join(table.notes)


def test_pixelrnn_baseline_no_longer_says_diagonal_bilstm_is_missing():
    from dgmbench.models.base import MODELS

    assert "diagonal_bilstm" in MODELS.names()
    entries = tomllib.loads((BASELINES / "autoregressive_pixel.toml").read_text())["result"]
    bilstm = [e for e in entries if e["model"] == "diagonal_bilstm"]
    assert bilstm and all("not implemented" not in e["protocol"] for e in bilstm)
    assert all("diagonal_bilstm" in e["protocol"] for e in bilstm)


def test_default_columns_are_the_headline_metrics_and_all_metrics_shows_everything():
    frame = load_results(RESULTS)
    default = build_leaderboards(frame, load_baselines(BASELINES), dataset="digits/binary")["digits/binary"]
    everything = build_leaderboards(frame, None, dataset="digits/binary", all_metrics=True)["digits/binary"]
    assert set(default.columns) <= {"nll", "iwae_nll", "neg_elbo", "ais_nll", "raise_nll", "vlb_nll", "fid", "kid"}
    assert {"nll", "fid", "kid", "ais_nll", "vlb_nll"} <= set(default.columns)
    assert set(everything.columns) == set(frame[frame.board == "digits/binary"].metric)
    assert len(everything.columns) > 2 * len(default.columns) - 3


# --- LaTeX ------------------------------------------------------------------------------------


def _latex_boards():
    return build_leaderboards(load_results(RESULTS), load_baselines(BASELINES), dataset="binarized_mnist")


def test_latex_table_has_booktabs_structure_and_cites_published_rows():
    latex = render(_latex_boards(), "latex")
    lines = latex.splitlines()
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", latex).group(1)
    top, bottom = lines.index(r"\toprule"), lines.index(r"\bottomrule")
    assert lines.count(r"\toprule") == lines.count(r"\bottomrule") == 1
    middles = [i for i, line in enumerate(lines) if line == r"\midrule"]
    assert top < middles[0] < middles[-1] < bottom and len(middles) == 2  # header / ours / published
    body = [line for line in lines[top + 1:bottom] if line != r"\midrule"]
    for line in body:
        assert line.endswith(r"\\") and line.count(" & ") == len(spec) - 1, line
    published = lines[middles[1] + 1:bottom]
    assert published and all(r"$^\dagger$~\cite{" in line for line in published)
    published_keys = load_baselines(BASELINES).query("board == 'binarized_mnist/fixed'").cite_key
    shown = re.search(r"published \\cite\{([^}]*)\}", latex).group(1).split(",")
    assert {"vandenoord2016pixel", "salakhutdinov2009deep"} <= set(shown)
    assert shown == sorted(shown) and set(shown) <= set(published_keys)
    assert r"\bfseries 79.20" in latex  # the best NLL (published PixelRNN) in bold
    assert "(nats, exact)" in latex and "(nats, estimate)" in latex and "(nats, bound)" in latex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (the booktabs structure is checked above)")
def test_latex_table_compiles_with_pdflatex(tmp_path):
    latex = render(build_leaderboards(load_results(RESULTS), load_baselines(BASELINES)), "latex")
    document = tmp_path / "tables.tex"
    document.write_text("\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs}\n"
                        "\\usepackage[margin=0.5cm,landscape]{geometry}\n\\begin{document}\n\\tiny\n"
                        + latex + "\n\\end{document}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000
    assert "Undefined control sequence" not in result.stdout


def test_published_fids_on_other_features_get_a_board_of_their_own(synthetic):
    """An Inception FID published for a board whose FIDs we compute on the domain CNN is a
    different quantity: its row goes to `<board>:inception-v3`, never into our fid column."""
    store, baselines, _ = synthetic
    (baselines / "y.toml").write_text(
        '[[result]]\nmodel = "made"\nlabel = "GAN (Other 2001)"\nboard = "digits/binary"\nfeatures = "inception-v3"\n'
        'metric = "fid"\nvalue = 3.5\nunit = ""\nkind = "score"\ncitation = "Other, B. (2001). Far things. Venue."\n'
        'protocol = "p"\n')
    boards = build_leaderboards(load_results(store), load_baselines(baselines), dataset="digits")
    assert set(boards) == {"digits/binary", "digits/binary:inception-v3"}
    ours = boards["digits/binary"]
    assert "GAN (Other 2001)" not in set(ours.rows.label)
    assert 3.5 not in set(ours.mean["fid"].dropna())  # our column holds only domain-CNN values
    apart = boards["digits/binary:inception-v3"]
    assert list(apart.rows.label) == ["GAN (Other 2001)"] and apart.mean["fid"].iloc[0] == 3.5
    assert any("inception-v3 features" in note and "never compared" in note for note in apart.notes)
    # the committed MNIST rows from Lucic et al. land apart from our domain-CNN FIDs
    committed = build_leaderboards(load_results(RESULTS), load_baselines(BASELINES), dataset="mnist")
    inception = committed["mnist/dequantized:inception-v3"]
    assert (inception.rows.source == "published").all() and len(inception.rows) == 7
    assert not committed["mnist/dequantized"].rows.label.str.contains("Lucic").any()


def test_the_metric_a_run_reproduces_is_a_default_column_beside_its_published_number():
    """A Parzen estimate is no family's headline metric, yet the runs that reproduce a
    published Parzen number (GAN, AAE) must show on the default board beside that number."""
    boards = build_leaderboards(load_results(RESULTS), load_baselines(BASELINES), dataset="mnist")
    board = boards["mnist/dequantized"]
    assert "parzen_ll" in board.columns
    linked = board.reproductions
    assert {"gan_parzen_mnist", "aae_parzen_mnist"} <= set(linked.name)
    published = board.rows[board.rows.source == "published"]
    assert {340.0, 225.0} <= set(board.mean.loc[published.index, "parzen_ll"].dropna())
    # without such a run, the column stays off the default board (headline metrics only)
    frame = load_results(RESULTS)
    unlinked = frame[~frame.reproduces.map(lambda link: isinstance(link, dict))]
    plain = build_leaderboards(unlinked, load_baselines(BASELINES), dataset="mnist")["mnist/dequantized"]
    assert "parzen_ll" not in plain.columns
