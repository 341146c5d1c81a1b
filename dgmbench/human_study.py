"""Human real-vs-fake studies: export a self-contained study page, ingest the responses.

Design: two-alternative forced choice (Denton et al. 2015, "Deep Generative Image Models
using a Laplacian Pyramid of Adversarial Networks", NeurIPS; Zhou et al. 2019, "HYPE: A
Benchmark for Human eYe Perceptual Evaluation of Generative Models", NeurIPS). Every trial
shows one real test image and one model sample side by side; the participant clicks the
one they believe is real. For each model the accuracy is

    accuracy = (# trials where the real image was picked) / (# trials),

so 50% means humans cannot tell the model's samples from real data and 100% means they
always can. Its 95% interval is the Wilson score interval (Wilson 1927, JASA 22:209),
with z = Phi^-1(0.975) and p = k/n:

    (p + z^2/2n  -/+  z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).

The interval treats trials as independent; responses of one participant are correlated,
so with few participants it is optimistic.

What :func:`export_study` writes (``out_dir``):

* ``index.html``: one file, no server: the images are embedded as base64 PNG data URIs
  (upscaled with nearest neighbour so 8x8 or 28x28 images are visible), the trials in a
  script. Participants enter an ID (pre-filled from the URL parameters ``participant``,
  ``PROLIFIC_PID``, ``workerId`` or ``pid``), click or press F/J (or the arrow keys), get
  no feedback, and at the end press "Download CSV", which saves their responses
  (:data:`RESPONSE_COLUMNS`) through a Blob download.
  Which side is real is in the page's script (it has to be, to give the participant's
  ``correct`` column), but never in the DOM, the alt texts or the image names: fine for
  lab studies, not secure against a participant who reads the page source. Crowdsourced
  studies should use the manifest instead, where the truth stays with the experimenter.
* ``manifest.csv``: one row per trial (:data:`MANIFEST_COLUMNS`), in presentation order;
  ``left_image``/``right_image`` name PNG files under ``images/`` (optionally prefixed
  with a base URL), ready for an MTurk/Prolific template. Image file names are numbered
  in a shuffled order, so they say nothing about which image is real.
* ``images/img_NNNN.png``: every image that appears in a trial, upscaled as in the page.

Trials: per model, ``trials_per_model`` (even) trials, each pairing a fake drawn without
replacement from that model's samples with a real image drawn without replacement from
the real set (across the whole study when there are enough real images, else within the
model); exactly half of each model's trials have the real image on the left. All trials
of all models are shuffled together with the seed; every participant sees that order.

Attention checks (optional, ``attention_checks=k``): k extra trials of a real image
against uniform pixel noise, under the reserved model name ``attention_check``. They are
left out of the model table; ``ingest(..., min_attention_accuracy=a)`` drops every
participant whose attention-check accuracy is below a (or who answered none).

:func:`ingest` never trusts the client: correctness is recomputed from the manifest, and
a ``correct`` column that disagrees is a problem. Problems (unknown trial ids, answers for
another export of the study, choices other than left/right, duplicate answers of one
participant to one trial, wrong model names, bad response times) raise
:class:`ResponseValidationError` listing them all; with ``lenient=True`` the offending rows
are dropped instead (of duplicates, the first answer is kept) and listed in
``table.attrs["problems"]``. A response file without the required columns
(``participant_id``, ``trial_id``, ``choice``) is an error in both modes.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from dgmbench.data.base import DataInfo
from dgmbench.train.checkpoint import load_tensor_file

ATTENTION_CHECK = "attention_check"
SIDES = ("left", "right")
MANIFEST_COLUMNS = (
    "study_id",
    "trial_index",
    "trial_id",
    "model",
    "real_image_id",
    "fake_image_id",
    "real_position",
    "left_image",
    "right_image",
)
RESPONSE_COLUMNS = (
    "participant_id",
    "study_id",
    "trial_index",
    "trial_id",
    "model",
    "choice",
    "correct",
    "response_time_ms",
)
REQUIRED_RESPONSE_COLUMNS = ("participant_id", "trial_id", "choice")
TABLE_COLUMNS = ("n", "correct", "accuracy", "wilson_low", "wilson_high", "participants")
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}"}


# --- images -------------------------------------------------------------------------
def to_uint8(x: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """Images in the dataset's value convention -> uint8 (n, C, H, W) for display.

    Dequantized data are shown at their discrete levels (floor(x L)), as real images are,
    so the dequantization noise is no tell between real and fake.
    """
    if not info.is_image:
        raise ValueError(f"a human study needs images, but {info.board} has shape {info.shape}")
    if x.dtype == torch.uint8:
        return x
    x = x.detach().float()
    if info.value_type == "binary":
        unit = x.clamp(0, 1)
    elif info.value_type == "discrete":
        unit = x.clamp(0, info.num_levels - 1) / (info.num_levels - 1)
    elif info.dequantization_levels is not None:
        levels = info.dequantization_levels
        unit = torch.floor(x.clamp(0, 1) * levels).clamp(max=levels - 1) / (levels - 1)
    else:
        unit = x.clamp(0, 1)
    return torch.round(unit * 255).to(torch.uint8)


def png_bytes(image: torch.Tensor, scale: int) -> bytes:
    """One uint8 (C, H, W) image (C = 1 or 3) as PNG, upscaled `scale`x by nearest neighbour."""
    from PIL import Image

    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a uint8 (1|3, H, W) image, got {image.dtype} {tuple(image.shape)}")
    array = image.cpu().permute(1, 2, 0).numpy()
    array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


# --- statistics ---------------------------------------------------------------------
def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (NaNs when n = 0)."""
    from scipy.stats import norm

    if n == 0:
        return math.nan, math.nan
    z = norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half_width), min(1.0, center + half_width)


# --- export -------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyFiles:
    page: Path
    manifest: Path
    images: Path
    study_id: str


def _real_images(real: torch.Tensor | Mapping[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
    if isinstance(real, Mapping):
        ids = [str(key) for key in real]
        images = torch.stack([real[key] for key in real]) if ids else torch.empty(0, dtype=torch.uint8)
    else:
        images = real
        ids = [str(i) for i in range(len(real))]
    return ids, images


def _check_images(name: str, images: torch.Tensor, shape: tuple[int, ...] | None) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"{name}: expected uint8 images (n, 1|3, H, W), got {images.dtype} {tuple(images.shape)}; "
            "convert model samples with dgmbench.human_study.to_uint8(samples, info)"
        )
    if shape is not None and tuple(images.shape[1:]) != shape:
        raise ValueError(f"{name}: images of shape {tuple(images.shape[1:])}, real images are {shape}")


def _balanced_sides(rng: np.random.Generator, n: int) -> list[str]:
    sides = ["left"] * (n // 2) + ["right"] * (n - n // 2)
    return [sides[i] for i in rng.permutation(n)]


def export_study(
    real: torch.Tensor | Mapping[str, torch.Tensor],
    fakes: Mapping[str, torch.Tensor],
    out_dir: str | Path,
    trials_per_model: int = 20,
    seed: int = 0,
    attention_checks: int = 0,
    title: str = "Real or generated?",
    display_size: int = 224,
    image_base_url: str = "",
) -> StudyFiles:
    """Write the study page, manifest and image files (see the module docstring).

    real: uint8 (n, C, H, W) images (ids "0".."n-1") or a mapping id -> uint8 (C, H, W).
    fakes: model name -> uint8 (n, C, H, W) samples (ids are their indices).
    """
    real_ids, real_images = _real_images(real)
    _check_images("real", real_images, None)
    image_shape = tuple(real_images.shape[1:])
    if not fakes:
        raise ValueError("no models to study: pass at least one entry in `fakes`")
    if trials_per_model <= 0 or trials_per_model % 2:
        raise ValueError(f"trials_per_model must be a positive even number (half real-left), got {trials_per_model}")
    if ATTENTION_CHECK in fakes:
        raise ValueError(f"{ATTENTION_CHECK!r} is reserved for attention-check trials")
    for model, samples in fakes.items():
        _check_images(model, samples, image_shape)
        if len(samples) < trials_per_model:
            raise ValueError(
                f"{model}: {len(samples)} samples, but {trials_per_model} trials need as many distinct fakes"
            )
    if attention_checks < 0:
        raise ValueError(f"attention_checks must be >= 0, got {attention_checks}")

    rng = np.random.default_rng(seed)
    n_real = len(real_ids)
    groups = [(model, trials_per_model) for model in fakes]
    if attention_checks:
        groups.append((ATTENTION_CHECK, attention_checks))
    total = sum(count for _, count in groups)
    if total <= n_real:
        order = rng.permutation(n_real)
        real_draws = np.split(order[:total], np.cumsum([count for _, count in groups])[:-1])
    elif max(count for _, count in groups) <= n_real:
        real_draws = [rng.choice(n_real, count, replace=False) for _, count in groups]
    else:
        raise ValueError(f"{n_real} real images are too few for {max(c for _, c in groups)} trials of one model")

    # Each trial: (model, real index, fake key, real side). Keys of `pool` are
    # ("real", "", index) and ("fake", model, index), so no model name can collide with reals.
    pool: dict[tuple[str, str, int], torch.Tensor] = {}
    fake_ids: dict[tuple[str, str, int], str] = {}
    trials = []
    for (model, count), real_draw in zip(groups, real_draws):
        if model == ATTENTION_CHECK:
            noise = rng.integers(0, 256, size=(count, *image_shape), dtype=np.uint8)
            fake_index = np.arange(count)
            for i in fake_index:
                pool[("fake", model, int(i))] = torch.from_numpy(noise[i])
                fake_ids[("fake", model, int(i))] = f"noise:{i}"
        else:
            fake_index = rng.choice(len(fakes[model]), count, replace=False)
            for i in fake_index:
                pool[("fake", model, int(i))] = fakes[model][int(i)]
                fake_ids[("fake", model, int(i))] = f"{model}:{i}"
        for r, f, side in zip(real_draw, fake_index, _balanced_sides(rng, count)):
            pool[("real", "", int(r))] = real_images[int(r)]
            trials.append((model, int(r), ("fake", model, int(f)), side))
    trials = [trials[i] for i in rng.permutation(len(trials))]

    # Image numbers follow a shuffled pool order, so names and the page's image list do
    # not group real and fake images.
    keys = sorted(pool)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    number = {key: i for i, key in enumerate(keys)}
    scale = max(1, display_size // max(image_shape[1:]))
    pngs = [png_bytes(pool[key].to(torch.uint8), scale) for key in keys]
    file_names = [f"img_{i:04d}.png" for i in range(len(keys))]

    rows = []
    for index, (model, r, fake_key, side) in enumerate(trials):
        real_key = ("real", "", r)
        left, right = (real_key, fake_key) if side == "left" else (fake_key, real_key)
        rows.append(
            {
                "trial_index": index,
                "trial_id": f"t{index + 1:04d}",
                "model": model,
                "real_image_id": real_ids[r],
                "fake_image_id": fake_ids[fake_key],
                "real_position": side,
                "left_image": f"{image_base_url}images/{file_names[number[left]]}",
                "right_image": f"{image_base_url}images/{file_names[number[right]]}",
                "_left": number[left],
                "_right": number[right],
            }
        )
    digest = hashlib.sha256()
    digest.update(json.dumps([{k: v for k, v in row.items() if k[0] != "_"} for row in rows]).encode())
    for png in pngs:
        digest.update(hashlib.sha256(png).digest())
    study_id = digest.hexdigest()[:12]

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for name, png in zip(file_names, pngs):
        (out / "images" / name).write_bytes(png)
    manifest = pd.DataFrame([{"study_id": study_id, **row} for row in rows])[list(MANIFEST_COLUMNS)]
    manifest.to_csv(out / "manifest.csv", index=False)

    study = {
        "study_id": study_id,
        "response_columns": list(RESPONSE_COLUMNS),
        "images": ["data:image/png;base64," + base64.b64encode(png).decode("ascii") for png in pngs],
        "trials": [
            {
                "id": row["trial_id"],
                "model": row["model"],
                "left": row["_left"],
                "right": row["_right"],
                "real": SIDES.index(row["real_position"]),
            }
            for row in rows
        ],
    }
    # "</" inside a <script> would end it early.
    study_json = json.dumps(study, separators=(",", ":")).replace("</", "<\\/")
    template = resources.files("dgmbench").joinpath("templates/human_study.html").read_text("utf-8")
    page = (
        template.replace("__TITLE__", html.escape(title))
        .replace("__HEIGHT__", str(scale * image_shape[1]))
        .replace("__WIDTH__", str(scale * image_shape[2]))
        .replace("__STUDY_JSON__", study_json)
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    return StudyFiles(out / "index.html", out / "manifest.csv", out / "images", study_id)


# --- ingest -------------------------------------------------------------------------
class ResponseValidationError(ValueError):
    """Responses that do not fit the manifest; the message lists every problem."""


def _read_csv(source: str | Path | pd.DataFrame, what: str = "CSV file") -> pd.DataFrame:
    """A CSV file as strings; a directory, a missing, empty or unparsable file is one
    ValueError line naming the file."""
    if isinstance(source, pd.DataFrame):
        return source.astype(str)
    path = Path(source)
    if path.is_dir():
        raise ResponseValidationError(f"{path} is a directory; give the {what} itself")
    if not path.exists():
        raise ResponseValidationError(f"{path}: no such {what}")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ResponseValidationError(f"{path} is empty; expected a {what} with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ResponseValidationError(f"{path} is not a readable {what}: {' '.join(str(err).split())}") from None


def _problem_list(problems: list[dict], limit: int = 50) -> str:
    lines = [f"  {p['source']} line {p['line']}: {p['reason']}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def read_manifest(manifest: str | Path | pd.DataFrame) -> pd.DataFrame:
    table = _read_csv(manifest, "manifest CSV file (manifest.csv of an exported study)")
    missing = [c for c in ("trial_id", "model", "real_position") if c not in table.columns]
    if missing:
        raise ResponseValidationError(f"manifest lacks the column(s) {', '.join(missing)}")
    if table.empty:
        raise ResponseValidationError(f"manifest {manifest} has a header but no trials")
    duplicated = table["trial_id"][table["trial_id"].duplicated()].unique()
    if len(duplicated):
        raise ResponseValidationError(f"manifest repeats trial id(s) {', '.join(duplicated[:10])}")
    bad = table[~table["real_position"].isin(SIDES)]
    if len(bad):
        raise ResponseValidationError(
            f"manifest real_position must be left/right; trial(s) {', '.join(bad['trial_id'][:10])} are not"
        )
    return table.set_index("trial_id", drop=False)


_TRUE, _FALSE = {"1", "true", "True", "TRUE"}, {"0", "false", "False", "FALSE"}


def read_responses(
    responses: str | Path | pd.DataFrame | Iterable[str | Path | pd.DataFrame],
    manifest: pd.DataFrame,
) -> tuple[pd.DataFrame, list[dict]]:
    """All response rows, checked against the manifest: (valid rows, problems).

    Valid rows carry participant_id, trial_id, model, choice and the recomputed
    ``correct`` (bool). Problems are dicts with source, line, participant_id, trial_id,
    reason.
    """
    if isinstance(responses, (str, Path, pd.DataFrame)):
        responses = [responses]
    study_ids = set(manifest["study_id"]) if "study_id" in manifest.columns else set()
    frames, problems = [], []
    for position, source in enumerate(responses):
        name = f"responses[{position}]" if isinstance(source, pd.DataFrame) else str(source)
        table = _read_csv(source, "response CSV file")
        missing = [c for c in REQUIRED_RESPONSE_COLUMNS if c not in table.columns]
        if missing:
            raise ResponseValidationError(
                f"{name} lacks the required column(s) {', '.join(missing)} "
                f"(required: {', '.join(REQUIRED_RESPONSE_COLUMNS)}; found: {', '.join(table.columns)})"
            )
        if table.empty:
            raise ResponseValidationError(f"{name} has a header but no response rows; remove it or give the "
                                          "file with the participants' answers")
        table = table.copy()
        table["source"] = name
        table["line"] = np.arange(len(table)) + 2  # line 1 is the header
        frames.append(table)
    if not frames:
        raise ResponseValidationError("no response files given")
    table = pd.concat(frames, ignore_index=True)
    for column in ("study_id", "model", "correct", "response_time_ms"):
        if column not in table.columns:
            table[column] = ""
    table = table.fillna("")
    table["participant_id"] = table["participant_id"].str.strip()
    table["trial_id"] = table["trial_id"].str.strip()
    table["choice"] = table["choice"].str.strip().str.lower()

    known = table["trial_id"].isin(manifest.index)
    truth = manifest["real_position"].reindex(table["trial_id"]).to_numpy()
    true_model = manifest["model"].reindex(table["trial_id"]).to_numpy()
    table["correct_recomputed"] = table["choice"].to_numpy() == truth
    reasons: list[list[str]] = [[] for _ in range(len(table))]

    def flag(mask: pd.Series | np.ndarray, reason) -> None:
        for i in np.flatnonzero(np.asarray(mask)):
            reasons[i].append(reason(table.iloc[i]) if callable(reason) else reason)

    flag(table["participant_id"] == "", "empty participant_id")
    flag(~known, lambda row: f"unknown trial id {row['trial_id']!r}")
    flag(~table["choice"].isin(SIDES), lambda row: f"choice {row['choice']!r} is not left/right")
    if study_ids:
        flag(
            (table["study_id"] != "") & ~table["study_id"].isin(study_ids),
            lambda row: f"study_id {row['study_id']!r} is not this manifest's ({', '.join(sorted(study_ids))}): "
            "answers to another export of the study",
        )
    flag(
        known & (table["model"] != "") & (table["model"].to_numpy() != true_model),
        lambda row: f"model {row['model']!r} disagrees with the manifest for trial {row['trial_id']}",
    )
    claimed = table["correct"].str.strip()
    flag(
        (claimed != "") & ~claimed.isin(_TRUE | _FALSE),
        lambda row: f"correct {row['correct']!r} is not 0/1",
    )
    claimed_bool = claimed.isin(_TRUE)
    flag(
        known & table["choice"].isin(SIDES) & claimed.isin(_TRUE | _FALSE)
        & (claimed_bool != table["correct_recomputed"]),
        "the client's `correct` disagrees with the manifest",
    )
    times = pd.to_numeric(table["response_time_ms"].str.strip().replace("", "nan"), errors="coerce")
    bad_time = (table["response_time_ms"].str.strip() != "") & ~(np.isfinite(times) & (times >= 0))
    flag(bad_time, lambda row: f"response_time_ms {row['response_time_ms']!r} is not a time >= 0")
    duplicate = table.duplicated(["participant_id", "trial_id"], keep="first") & (table["participant_id"] != "")
    flag(duplicate, lambda row: f"second answer of {row['participant_id']!r} to trial {row['trial_id']}")

    for i, row_reasons in enumerate(reasons):
        if row_reasons:
            row = table.iloc[i]
            problems.append(
                {
                    "source": row["source"],
                    "line": int(row["line"]),
                    "participant_id": row["participant_id"],
                    "trial_id": row["trial_id"],
                    "reason": "; ".join(row_reasons),
                }
            )
    valid = table[[not r for r in reasons]].copy()
    valid["model"] = manifest["model"].reindex(valid["trial_id"]).to_numpy()
    valid["correct"] = valid["correct_recomputed"].astype(bool)
    valid["response_time_ms"] = times[valid.index]
    return valid[["participant_id", "trial_id", "model", "choice", "correct", "response_time_ms"]], problems


def accuracy_table(valid: pd.DataFrame, models: Iterable[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per model: trials, correct answers, accuracy and its Wilson interval, participants."""
    rows = {}
    for model in models:
        answers = valid[valid["model"] == model]
        n, k = len(answers), int(answers["correct"].sum())
        low, high = wilson_interval(k, n, confidence)
        rows[model] = {
            "n": n,
            "correct": k,
            "accuracy": k / n if n else math.nan,
            "wilson_low": low,
            "wilson_high": high,
            "participants": answers["participant_id"].nunique(),
        }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(TABLE_COLUMNS))
    table.index.name = "model"
    return table.astype({"n": int, "correct": int, "participants": int})


def ingest(
    responses: str | Path | pd.DataFrame | Iterable[str | Path | pd.DataFrame],
    manifest: str | Path | pd.DataFrame,
    lenient: bool = False,
    min_attention_accuracy: float | None = None,
) -> pd.DataFrame:
    """Accuracy per model (index) with its Wilson 95% interval; see the module docstring.

    ``attrs`` carries ``problems`` (dropped rows, lenient mode), ``attention``
    (participant -> attention-check trials, correct, accuracy) and
    ``excluded_participants`` (below ``min_attention_accuracy``).
    """
    manifest_table = read_manifest(manifest)
    if min_attention_accuracy is not None and not (manifest_table["model"] == ATTENTION_CHECK).any():
        raise ValueError("min_attention_accuracy needs a study exported with attention checks; this one has none")
    valid, problems = read_responses(responses, manifest_table)
    if problems and not lenient:
        raise ResponseValidationError(
            f"{len(problems)} invalid response row(s) (pass lenient=True / --lenient to drop them):\n"
            + _problem_list(problems)
        )
    checks = valid[valid["model"] == ATTENTION_CHECK]
    attention = {}
    for participant in sorted(valid["participant_id"].unique()):
        answers = checks[checks["participant_id"] == participant]
        n, k = len(answers), int(answers["correct"].sum())
        attention[participant] = {"n": n, "correct": k, "accuracy": k / n if n else math.nan}
    excluded = []
    if min_attention_accuracy is not None:
        excluded = [
            p for p, a in attention.items() if not (a["n"] and a["accuracy"] >= min_attention_accuracy)
        ]
        valid = valid[~valid["participant_id"].isin(excluded)]
    models = [m for m in dict.fromkeys(manifest_table["model"]) if m != ATTENTION_CHECK]
    table = accuracy_table(valid, sorted(models))
    table.attrs.update(problems=problems, attention=attention, excluded_participants=excluded)
    return table


# --- reporting ----------------------------------------------------------------------
def format_table(table: pd.DataFrame, fmt: str = "markdown") -> str:
    """The per-model table as markdown, LaTeX (booktabs) or CSV."""
    if fmt == "csv":
        return table.to_csv()

    def percent(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"

    rows = [
        (
            model,
            str(int(row["n"])),  # iterrows turns the whole row into floats
            str(int(row["participants"])),
            percent(row["accuracy"]),
            f"[{percent(row['wilson_low'])}, {percent(row['wilson_high'])}]",
        )
        for model, row in table.iterrows()
    ]
    header = ("model", "trials", "participants", "accuracy", "95% CI (Wilson)")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "| --- | ---: | ---: | ---: | :---: |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    if fmt == "latex":

        def tex(text: str) -> str:
            return re.sub(r"[\\&%$#_{}]", lambda m: LATEX_ESCAPES[m.group()], text)

        lines = [r"\begin{tabular}{lrrrc}", r"\toprule", " & ".join(tex(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(tex(cell) for cell in row) + r" \\" for row in rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}; valid formats: markdown, latex, csv")


# --- command line -------------------------------------------------------------------
def _parse_samples(items: list[str]) -> dict[str, Path]:
    samples = {}
    for item in items:
        model, sep, path = item.partition("=")
        if not sep or not model or not path:
            raise ValueError(f"--samples takes MODEL=PATH, got {item!r}")
        if model in samples:
            raise ValueError(f"--samples names model {model!r} twice")
        samples[model] = Path(path)
    return samples


def _cli_export(args: argparse.Namespace) -> int:
    from dgmbench.data.base import load_dataset

    try:
        samples = _parse_samples(args.samples)
        dataset = load_dataset(args.dataset)
        info = dataset.info
        real = to_uint8(dataset.split(args.split), info)
        fakes = {}
        for model, path in samples.items():
            loaded = load_tensor_file(path, what="samples file (a tensor saved with torch.save)")
            if not isinstance(loaded, torch.Tensor):
                raise ValueError(f"{path}: expected a tensor of samples, found {type(loaded).__name__}")
            if tuple(loaded.shape[1:]) != info.shape:
                raise ValueError(f"{path}: samples of shape {tuple(loaded.shape)}, {info.board} images are {info.shape}")
            fakes[model] = to_uint8(loaded, info)
        files = export_study(
            {f"{args.split}:{i}": image for i, image in enumerate(real)},
            fakes,
            args.out,
            trials_per_model=args.trials,
            seed=args.seed,
            attention_checks=args.attention_checks,
            title=args.title,
            display_size=args.display_size,
            image_base_url=args.image_base_url,
        )
    except (ValueError, KeyError, FileNotFoundError) as error:
        print(f"dgmbench human-study export: {error}", file=sys.stderr)
        return 2
    print(f"study {files.study_id}: page {files.page}, manifest {files.manifest}, images in {files.images}/")
    return 0


def _cli_ingest(args: argparse.Namespace) -> int:
    try:
        table = ingest(args.responses, args.manifest, lenient=args.lenient,
                       min_attention_accuracy=args.min_attention)
    except (ValueError, FileNotFoundError) as error:  # ResponseValidationError is a ValueError
        print(f"dgmbench human-study ingest: {error}", file=sys.stderr)
        return 2
    problems = table.attrs["problems"]
    if problems:
        print(f"dropped {len(problems)} invalid row(s):\n{_problem_list(problems)}", file=sys.stderr)
    if table.attrs["excluded_participants"]:
        print(
            f"excluded {len(table.attrs['excluded_participants'])} participant(s) below "
            f"{args.min_attention:.0%} attention-check accuracy: {', '.join(table.attrs['excluded_participants'])}",
            file=sys.stderr,
        )
    sys.stdout.write(format_table(table, args.format))
    if args.format != "csv":
        print("accuracy at picking the real image: 50% = indistinguishable from real data", file=sys.stderr)
    return 0


def register_cli(subparsers) -> None:
    """Add `human-study export|ingest` to the dgmbench command line."""
    study = subparsers.add_parser("human-study", help="human real-vs-fake studies: export a page, ingest answers")
    commands = study.add_subparsers(dest="human_study_command", required=True)

    export = commands.add_parser(
        "export",
        help="write a self-contained study page, manifest.csv and PNGs",
        description="Real images come from the dataset's split; fakes from samples saved with torch.save.",
    )
    export.add_argument("--dataset", required=True, help="dataset/variant, e.g. digits/binary")
    export.add_argument("--samples", action="append", required=True, metavar="MODEL=PATH",
                        help="a model's samples (tensor saved by torch.save); repeat per model")
    export.add_argument("--out", required=True, type=Path, help="output folder")
    export.add_argument("--trials", type=int, default=20, help="trials per model (even; default 20)")
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--split", default="test", help="split the real images come from (default test)")
    export.add_argument("--attention-checks", type=int, default=0, help="real-vs-noise trials (default 0)")
    export.add_argument("--title", default="Real or generated?")
    export.add_argument("--display-size", type=int, default=224, help="target image size in pixels")
    export.add_argument("--image-base-url", default="", help="prefix for the manifest's image paths")
    export.set_defaults(func=_cli_export)

    ingest_parser = commands.add_parser("ingest", help="validate responses, report accuracy per model")
    ingest_parser.add_argument("--manifest", required=True, type=Path)
    ingest_parser.add_argument("responses", nargs="+", type=Path, help="response CSV files")
    ingest_parser.add_argument("--format", choices=("markdown", "latex", "csv"), default="markdown")
    ingest_parser.add_argument("--lenient", action="store_true",
                               help="drop invalid rows (and report them) instead of failing")
    ingest_parser.add_argument("--min-attention", type=float, default=None, metavar="ACCURACY",
                               help="exclude participants below this attention-check accuracy (0..1)")
    ingest_parser.set_defaults(func=_cli_ingest)
