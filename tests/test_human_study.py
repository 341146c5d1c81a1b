"""Human real-vs-fake studies: export, validation, accuracy and its Wilson interval.

Ground truths: scipy's independent Wilson implementation (binomtest(...).proportion_ci),
the source tensors the exported PNGs must decode back to, counts computed directly from
the manifest, and the raw digit levels for the display conversion.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.stats import binomtest

from dgmbench import human_study as hs
from dgmbench.data.base import DataInfo, load_dataset

SHAPE = (1, 8, 8)


def random_images(n: int, seed: int, shape=SHAPE) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def study(tmp_path):
    real = random_images(60, 0)
    fakes = {"model_a": random_images(30, 1), "model_b": random_images(30, 2)}
    files = hs.export_study(real, fakes, tmp_path / "study", trials_per_model=10, seed=3, attention_checks=4)
    manifest = pd.read_csv(files.manifest, dtype=str, keep_default_na=False)
    return real, fakes, files, manifest


def answers(manifest: pd.DataFrame, participant: str, choice) -> pd.DataFrame:
    """A scripted participant: `choice(row)` -> "left"/"right" for every manifest row."""
    chosen = [choice(row) for _, row in manifest.iterrows()]
    return pd.DataFrame(
        {
            "participant_id": participant,
            "study_id": manifest["study_id"],
            "trial_id": manifest["trial_id"],
            "model": manifest["model"],
            "choice": chosen,
            "correct": [int(c == r) for c, r in zip(chosen, manifest["real_position"])],
            "response_time_ms": 500,
        }
    )


def always_real(row):
    return row["real_position"]


def always_fake(row):
    return "right" if row["real_position"] == "left" else "left"


# --- Wilson interval ----------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 40, 333])
def test_wilson_matches_scipy(n):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        low, high = hs.wilson_interval(k, n)
        assert low == pytest.approx(reference.low, abs=1e-12)
        assert high == pytest.approx(reference.high, abs=1e-12)
    reference = binomtest(n // 2, n).proportion_ci(confidence_level=0.9, method="wilson")
    assert hs.wilson_interval(n // 2, n, 0.9) == pytest.approx((reference.low, reference.high), abs=1e-12)


def test_wilson_without_trials_is_nan():
    assert all(math.isnan(v) for v in hs.wilson_interval(0, 0))


# --- display conversion -------------------------------------------------------------
def test_to_uint8_on_digits_variants():
    levels = load_dataset("digits/17level").split("test")
    expected = torch.round(levels / 16 * 255).to(torch.uint8)
    assert torch.equal(hs.to_uint8(levels, load_dataset("digits/17level").info), expected)
    # Dequantized images show at their levels: the noise must not be a tell.
    dequantized = load_dataset("digits/dequantized")
    assert torch.equal(hs.to_uint8(dequantized.split("test"), dequantized.info), expected)
    binary = load_dataset("digits/binary")
    shown = hs.to_uint8(binary.split("test"), binary.info)
    assert torch.equal(shown, (levels >= 8).to(torch.uint8) * 255)
    assert hs.to_uint8(shown, binary.info) is shown


def test_to_uint8_rejects_vectors():
    info = DataInfo(name="two_moons", variant="continuous", shape=(2,), value_type="continuous")
    with pytest.raises(ValueError, match="needs images"):
        hs.to_uint8(torch.zeros(3, 2), info)


# --- export -------------------------------------------------------------------------
def test_export_balanced_and_consistent(study):
    real, fakes, files, manifest = study
    assert list(manifest.columns) == list(hs.MANIFEST_COLUMNS)
    assert len(manifest) == 2 * 10 + 4
    assert manifest["trial_id"].is_unique
    assert manifest["trial_index"].astype(int).tolist() == list(range(len(manifest)))
    assert set(manifest["study_id"]) == {files.study_id}
    for model, group in manifest.groupby("model"):
        counts = group["real_position"].value_counts()
        assert counts["left"] == counts["right"] == len(group) // 2
        assert group["fake_image_id"].is_unique
    # 24 trials <= 60 real images: no real image is shown twice in the study.
    assert manifest["real_image_id"].is_unique
    # Shuffled across models, not in blocks.
    assert manifest["model"].iloc[:10].nunique() > 1


def decode(path) -> torch.Tensor:
    array = np.asarray(Image.open(path))
    scale = array.shape[0] // SHAPE[1]
    return torch.from_numpy(array[::scale, ::scale].copy()).unsqueeze(0)


def test_exported_images_are_the_source_images(study):
    real, fakes, files, manifest = study
    root = files.page.parent
    for _, row in manifest.iterrows():
        real_file, fake_file = (
            (row["left_image"], row["right_image"]) if row["real_position"] == "left" else (row["right_image"], row["left_image"])
        )
        assert torch.equal(decode(root / real_file), real[int(row["real_image_id"])])
        source, index = row["fake_image_id"].split(":")
        if source != "noise":
            assert torch.equal(decode(root / fake_file), fakes[source][int(index)])
        assert Image.open(root / real_file).size == (224, 224)  # 8x8 upscaled 28x


def page_parts(page: str) -> tuple[dict, str]:
    script = re.search(r"const STUDY = (.*?);\n", page).group(1)
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    return json.loads(script), markup


def test_page_matches_manifest_and_hides_truth(study):
    real, fakes, files, manifest = study
    page = files.page.read_text()
    data, markup = page_parts(page)
    assert data["study_id"] == files.study_id
    assert [t["id"] for t in data["trials"]] == manifest["trial_id"].tolist()
    root = files.page.parent
    for trial, (_, row) in zip(data["trials"], manifest.iterrows()):
        assert trial["model"] == row["model"]
        assert hs.SIDES[trial["real"]] == row["real_position"]
        for side in hs.SIDES:
            embedded = data["images"][trial[side]].removeprefix("data:image/png;base64,")
            assert base64.b64decode(embedded) == (root / row[f"{side}_image"]).read_bytes()
    # Self-contained: no external resources; the truth and model names stay out of the DOM.
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    for secret in ("real_position", "model_a", "model_b", "fake"):
        assert secret not in markup


def test_export_is_deterministic_in_the_seed(tmp_path):
    real, fakes = random_images(40, 0), {"m": random_images(20, 1)}
    first = hs.export_study(real, fakes, tmp_path / "a", trials_per_model=8, seed=5)
    again = hs.export_study(real, fakes, tmp_path / "b", trials_per_model=8, seed=5)
    other = hs.export_study(real, fakes, tmp_path / "c", trials_per_model=8, seed=6)
    assert first.manifest.read_text() == again.manifest.read_text()
    assert first.page.read_text() == again.page.read_text()
    assert first.study_id != other.study_id


def test_export_reuses_real_images_only_across_models(tmp_path):
    real = random_images(12, 0)
    fakes = {"a": random_images(10, 1), "b": random_images(10, 2)}
    files = hs.export_study(real, fakes, tmp_path, trials_per_model=10, seed=0)
    manifest = pd.read_csv(files.manifest, dtype=str)
    assert all(group["real_image_id"].is_unique for _, group in manifest.groupby("model"))


def test_export_with_named_real_images_and_rgb(tmp_path):
    real = {f"test:{i}": image for i, image in enumerate(random_images(10, 0, (3, 16, 32)))}
    files = hs.export_study(real, {"m": random_images(4, 1, (3, 16, 32))}, tmp_path, trials_per_model=4,
                            image_base_url="https://example.org/study/")
    page = files.page.read_text()
    assert "width: 224px; height: 112px;" in page  # 7x nearest-neighbour, aspect kept
    assert not re.search(r"__[A-Z_]+__", page)
    manifest = pd.read_csv(files.manifest, dtype=str)
    assert manifest["real_image_id"].str.startswith("test:").all()
    assert manifest["left_image"].str.startswith("https://example.org/study/images/img_").all()
    name = manifest["left_image"].iloc[0].removeprefix("https://example.org/study/")
    picture = Image.open(tmp_path / name)
    assert picture.mode == "RGB" and picture.size == (224, 112)


@pytest.mark.parametrize(
    "fakes, trials, message",
    [
        ({"m": random_images(10, 1)}, 5, "even"),
        ({"m": random_images(3, 1)}, 4, "3 samples"),
        ({"m": random_images(10, 1).float()}, 4, "uint8"),
        ({"m": random_images(10, 1, (1, 4, 4))}, 4, "shape"),
        ({hs.ATTENTION_CHECK: random_images(10, 1)}, 4, "reserved"),
        ({}, 4, "at least one"),
    ],
)
def test_export_rejects_bad_input(tmp_path, fakes, trials, message):
    with pytest.raises(ValueError, match=message):
        hs.export_study(random_images(20, 0), fakes, tmp_path, trials_per_model=trials)


def test_export_needs_enough_real_images(tmp_path):
    with pytest.raises(ValueError, match="too few"):
        hs.export_study(random_images(4, 0), {"m": random_images(10, 1)}, tmp_path, trials_per_model=6)


# --- ingest -------------------------------------------------------------------------
def test_scripted_participants_give_exact_accuracies(study, tmp_path):
    _, _, files, manifest = study
    paths = []
    for name, choice in [("left", lambda row: "left"), ("oracle", always_real), ("fooled", always_fake)]:
        paths.append(tmp_path / f"{name}.csv")
        answers(manifest, name, choice).to_csv(paths[-1], index=False)

    table = hs.ingest(paths[0], files.manifest)
    assert list(table.index) == ["model_a", "model_b"]  # attention checks are not a model
    assert (table["n"] == 10).all() and (table["accuracy"] == 0.5).all()  # balanced design
    assert hs.ingest(paths[1], files.manifest)["accuracy"].eq(1.0).all()
    assert hs.ingest(paths[2], files.manifest)["accuracy"].eq(0.0).all()

    pooled = hs.ingest(paths, files.manifest)
    for model, row in pooled.iterrows():
        k = 5 + 10 + 0  # left-picker, oracle, fooled
        assert (row["n"], row["correct"], row["participants"]) == (30, k, 3)
        reference = binomtest(k, 30).proportion_ci(method="wilson")
        assert (row["wilson_low"], row["wilson_high"]) == pytest.approx((reference.low, reference.high))
    assert pooled.attrs["attention"]["oracle"] == {"n": 4, "correct": 4, "accuracy": 1.0}


def test_ingest_works_from_crowdsourcing_columns_only(study):
    _, _, files, manifest = study
    minimal = answers(manifest, "w1", always_real)[["participant_id", "trial_id", "choice"]]
    minimal["choice"] = minimal["choice"].str.upper()  # platforms may capitalise
    assert hs.ingest(minimal, files.manifest)["accuracy"].eq(1.0).all()


def corrupted(manifest: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Valid answers with one problem of each kind; row -> expected message."""
    table = answers(manifest, "p1", always_real)
    problems = {
        1: "unknown trial id",
        2: "not left/right",
        3: "disagrees with the manifest",  # client claims wrong correctness
        4: "model 'model_z'",
        5: "another export",
        6: "empty participant_id",
        7: "not a time",
    }
    table.loc[1, "trial_id"] = "t9999"
    table.loc[2, "choice"] = "middle"
    table.loc[3, "correct"] = 0
    table.loc[4, "model"] = "model_z"
    table.loc[5, "study_id"] = "000000000000"
    table.loc[6, "participant_id"] = " "
    table.loc[7, "response_time_ms"] = -3
    duplicate = table.iloc[[0]].assign(choice=always_fake(manifest.iloc[0]), correct=0)
    problems[len(table)] = "second answer"
    return pd.concat([table, duplicate], ignore_index=True), problems


def test_strict_ingest_lists_every_problem(study, tmp_path):
    _, _, files, manifest = study
    table, problems = corrupted(manifest)
    path = tmp_path / "responses.csv"
    table.to_csv(path, index=False)
    with pytest.raises(hs.ResponseValidationError) as error:
        hs.ingest(path, files.manifest)
    message = str(error.value)
    assert f"{len(problems)} invalid response row(s)" in message
    for row, reason in problems.items():
        assert re.search(rf"line {row + 2}: .*{re.escape(reason)}", message), reason


def test_lenient_ingest_drops_exactly_the_invalid_rows(study, tmp_path):
    _, _, files, manifest = study
    table, problems = corrupted(manifest)
    path = tmp_path / "responses.csv"
    table.to_csv(path, index=False)
    result = hs.ingest(path, files.manifest, lenient=True)
    assert sorted(p["line"] - 2 for p in result.attrs["problems"]) == sorted(problems)
    kept = table.drop(index=list(problems))
    kept = kept[~kept["trial_id"].isin(manifest["trial_id"][manifest["model"] == hs.ATTENTION_CHECK])]
    # The duplicate (a wrong answer) was dropped, the first (right) answer kept: all correct.
    assert result["n"].sum() == len(kept) and result["accuracy"].eq(1.0).all()


def test_missing_columns_fail_even_when_lenient(study):
    _, _, files, manifest = study
    table = answers(manifest, "p1", always_real).drop(columns=["choice"])
    for lenient in (False, True):
        with pytest.raises(hs.ResponseValidationError, match="lacks the required column.*choice"):
            hs.ingest(table, files.manifest, lenient=lenient)


def test_attention_checks_exclude_inattentive_participants(study):
    _, _, files, manifest = study
    is_check = manifest["model"] == hs.ATTENTION_CHECK
    careful = answers(manifest, "careful", lambda row: "left")
    careless = answers(manifest, "careless", always_real)
    careless.loc[is_check, "choice"] = careless.loc[is_check, "choice"].map({"left": "right", "right": "left"})
    careless["correct"] = (careless["choice"] == manifest["real_position"]).astype(int)
    careful.loc[is_check, "choice"] = manifest.loc[is_check, "real_position"]
    careful["correct"] = (careful["choice"] == manifest["real_position"]).astype(int)

    everyone = hs.ingest([careful, careless], files.manifest)
    assert everyone["accuracy"].eq(0.75).all()
    filtered = hs.ingest([careful, careless], files.manifest, min_attention_accuracy=0.75)
    assert filtered.attrs["excluded_participants"] == ["careless"]
    assert filtered["accuracy"].eq(0.5).all() and filtered["participants"].eq(1).all()


# --- reporting and command line -----------------------------------------------------
def test_format_table():
    table = hs.accuracy_table(
        pd.DataFrame({"participant_id": ["a"] * 4, "model": ["my_vae"] * 4, "correct": [True, True, True, False]}),
        ["my_vae", "unseen"],
    )
    markdown = hs.format_table(table, "markdown")
    assert "| my_vae | 4 | 1 | 75.0% | [30.1%, 95.4%] |" in markdown  # binomtest(3, 4) Wilson
    assert "| unseen | 0 | 0 | n/a | [n/a, n/a] |" in markdown
    latex = hs.format_table(table, "latex")
    assert r"my\_vae & 4 & 1 & 75.0\% & [30.1\%, 95.4\%] \\" in latex
    assert pd.read_csv(io.StringIO(hs.format_table(table, "csv")), index_col=0).loc["my_vae", "correct"] == 3
    with pytest.raises(ValueError, match="markdown, latex, csv"):
        hs.format_table(table, "html")


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dgmbench")
    hs.register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_export_and_ingest(tmp_path, capsys):
    binary = load_dataset("digits/binary")
    torch.save(binary.split("train")[:12], tmp_path / "copycat.pt")  # float {0,1} samples
    torch.save((torch.rand(12, 1, 8, 8) < 0.5).float(), tmp_path / "noise.pt")
    out = tmp_path / "study"
    argv = ["human-study", "export", "--dataset", "digits/binary", "--samples", f"copycat={tmp_path / 'copycat.pt'}",
            "--samples", f"noise={tmp_path / 'noise.pt'}", "--out", str(out), "--trials", "6", "--seed", "1"]
    assert cli(argv) == 0
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert manifest["real_image_id"].str.startswith("test:").all() and len(manifest) == 12
    row = manifest.iloc[0]
    real_file = row["left_image"] if row["real_position"] == "left" else row["right_image"]
    index = int(row["real_image_id"].split(":")[1])
    assert torch.equal(decode(out / real_file), binary.split("test")[index].to(torch.uint8) * 255)

    answers(pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False), "p", always_real).to_csv(
        tmp_path / "r.csv", index=False)
    capsys.readouterr()
    assert cli(["human-study", "ingest", "--manifest", str(out / "manifest.csv"), str(tmp_path / "r.csv")]) == 0
    printed = capsys.readouterr().out
    assert "| copycat | 6 | 1 | 100.0% |" in printed and "| noise | 6 | 1 | 100.0% |" in printed


def test_cli_reports_problems_with_exit_code(study, tmp_path, capsys):
    _, _, files, manifest = study
    table, problems = corrupted(manifest)
    table.to_csv(tmp_path / "r.csv", index=False)
    argv = ["human-study", "ingest", "--manifest", str(files.manifest), str(tmp_path / "r.csv")]
    assert cli(argv) == 2
    assert "unknown trial id 't9999'" in capsys.readouterr().err
    assert cli(argv + ["--lenient", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert f"dropped {len(problems)} invalid row(s)" in captured.err
    assert pd.read_csv(io.StringIO(captured.out), index_col=0).index.tolist() == ["model_a", "model_b"]


def test_cli_export_errors_are_messages(tmp_path, capsys):
    torch.save(torch.zeros(5, 64), tmp_path / "flat.pt")
    argv = ["human-study", "export", "--dataset", "digits/binary", "--samples", f"m={tmp_path / 'flat.pt'}",
            "--out", str(tmp_path / "s"), "--trials", "4"]
    assert cli(argv) == 2
    assert "(1, 8, 8)" in capsys.readouterr().err
    assert cli(argv[:5] + ["no_equals_sign"] + argv[6:]) == 2
    assert "MODEL=PATH" in capsys.readouterr().err


def test_a_model_named_real_does_not_collide_with_real_images(tmp_path):
    real, fake = random_images(8, 0), random_images(8, 1)
    files = hs.export_study(real, {"real": fake}, tmp_path, trials_per_model=8, seed=0)
    manifest = pd.read_csv(files.manifest, dtype=str)
    for _, row in manifest.iterrows():
        fake_file = row["right_image"] if row["real_position"] == "left" else row["left_image"]
        assert torch.equal(decode(tmp_path / fake_file), fake[int(row["fake_image_id"].split(":")[1])])


def test_attention_filter_needs_attention_checks(tmp_path):
    files = hs.export_study(random_images(8, 0), {"m": random_images(4, 1)}, tmp_path, trials_per_model=4)
    manifest = pd.read_csv(files.manifest, dtype=str, keep_default_na=False)
    with pytest.raises(ValueError, match="attention checks"):
        hs.ingest(answers(manifest, "p", always_real), files.manifest, min_attention_accuracy=0.5)


# --- issue 8 item 6: every bad ingest/export argument is one line, never a traceback ------------
@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "r.csv").write_text("participant_id,trial_id,choice\n") and d / "r.csv",
     "has a header but no response rows"),
    (lambda d: (d / "r.csv").write_text("") == 0 and d / "r.csv", "is empty; expected a response CSV file"),
    (lambda d: d, "is a directory; give the response CSV file itself"),
    (lambda d: d / "missing.csv", "no such response CSV file"),
])
def test_ingest_bad_response_files_are_one_line(study, tmp_path, capsys, make, message):
    _, _, files, _ = study
    path = make(tmp_path)
    assert cli(["human-study", "ingest", "--manifest", str(files.manifest), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err


def test_ingest_with_a_directory_or_header_only_manifest_is_one_line(study, tmp_path, capsys):
    _, _, files, manifest = study
    answers(manifest, "p", always_real).to_csv(tmp_path / "r.csv", index=False)
    assert cli(["human-study", "ingest", "--manifest", str(files.manifest.parent), str(tmp_path / "r.csv")]) == 2
    assert "is a directory; give the manifest CSV file" in capsys.readouterr().err
    (tmp_path / "m.csv").write_text(",".join(manifest.columns) + "\n")
    assert cli(["human-study", "ingest", "--manifest", str(tmp_path / "m.csv"), str(tmp_path / "r.csv")]) == 2
    assert "has a header but no trials" in capsys.readouterr().err


def test_the_dgmbench_command_reports_ingest_errors_in_one_line(study, tmp_path, capsys):
    from dgmbench.cli import main

    _, _, files, _ = study
    assert main(["human-study", "ingest", "--manifest", str(files.manifest), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory" in err


class _RunsCode:
    """Unpickling this would create `marker` (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_export_refuses_a_samples_file_that_is_not_plain_tensors(tmp_path, capsys):
    marker = tmp_path / "code_ran"
    torch.save({"samples": _RunsCode(marker)}, tmp_path / "evil.pt")
    argv = ["human-study", "export", "--dataset", "digits/binary", "--samples", f"m={tmp_path / 'evil.pt'}",
            "--out", str(tmp_path / "s"), "--trials", "4"]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"refused to load {tmp_path / 'evil.pt'}" in err and "could run code" in err
    assert not marker.exists() and not (tmp_path / "s").exists()
