"""The results store as a tidy pandas table: one row per (record, metric).

    >>> import dgmbench
    >>> df = dgmbench.load_results("results")
    >>> df[df.metric == "nll"].groupby(["board", "model"]).value.agg(["mean", "std", "count"])

Columns (protocol first, then the measurement):

``record`` (file name without .json), ``path``, ``run_key``, ``config_hash`` (the same
for every seed of one configuration), ``model``, ``family``, ``dataset``, ``variant``,
``board``, ``value_type`` (binary / discrete / continuous), ``seed``, ``suite`` ("quick"
or "full"), ``created`` (UTC timestamp), ``commit``, ``dirty``, ``command`` (reproduces
the run), ``samples`` (sample grid PNG), ``epochs``, ``train_seconds``, ``eval_seconds``, ``wall_seconds``, ``n_parameters``,
``model_config``, ``train_config``, ``eval_settings`` (dicts), ``reproduces`` (the published
result a ``dgmbench reproduce`` run targets: name, metric, published value; else None), then ``metric``,
``value``, ``unit``, ``stderr``, ``kind`` (exact / bound / estimate / score),
``estimator`` (the protocol's estimator text, else the kind), ``higher_is_better``,
``n`` (examples the metric averaged over), ``split``, ``extractor`` (feature network of
sample metrics), ``interval_low`` / ``interval_high`` (where the metric carries an
uncertainty range from an estimated log Z: the value at AIS's log Z -/+ 3 sd), and
``protocol`` (the metric's full protocol dict). ``null`` values in a record are NaN.

:func:`load_baselines` gives the published numbers (``baselines/*.toml``) with the same
measurement columns plus ``label``, ``citation``, ``cite_key`` and ``source`` = "published".
"""
from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

import pandas as pd

from dgmbench.results import ResultsStore

DEFAULT_BASELINES = Path(__file__).resolve().parent.parent / "baselines"

RECORD_COLUMNS = [
    "record", "path", "run_key", "config_hash", "model", "family", "dataset", "variant", "board",
    "value_type", "seed", "suite", "created", "commit", "dirty", "command", "samples", "epochs", "train_seconds",
    "eval_seconds", "wall_seconds", "n_parameters", "model_config", "train_config", "eval_settings",
    "reproduces",
]
METRIC_COLUMNS = [
    "metric", "value", "unit", "stderr", "kind", "estimator", "higher_is_better", "n", "split",
    "extractor", "interval_low", "interval_high", "protocol",
]
# `board:features`: the board of published sample metrics on another feature network (published_board)
FEATURES_SEPARATOR = ":"
BASELINE_COLUMNS = ["board", "model", "label", "metric", "value", "unit", "kind", "estimator",
                    "citation", "cite_key", "protocol", "file", "source", "reproduce"]


def load_results(results_dir: str | Path = "results") -> pd.DataFrame:
    """Every record of the store at `results_dir` as a tidy DataFrame (see module doc)."""
    records = ResultsStore(Path(results_dir)).load()
    rows = [
        {**_record_columns(record), **_metric_columns(metric)}
        for record in records
        for metric in record.get("metrics", [])
    ]
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS + METRIC_COLUMNS)
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    for column in ("value", "stderr", "interval_low", "interval_high", "train_seconds", "eval_seconds",
                   "wall_seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["seed"] = frame["seed"].astype("Int64")
    frame["source"] = "ours"
    return frame


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _record_columns(record: dict) -> dict:
    training = record.get("training") or {}
    git = record.get("git") or {}
    path = Path(record.get("_path", ""))
    return {
        "record": path.stem,
        "path": str(path),
        "run_key": record.get("run_key"),
        "config_hash": record.get("config_hash"),
        "model": record.get("model"),
        "family": record.get("family"),
        "dataset": record.get("dataset"),
        "variant": record.get("variant"),
        "board": record.get("board"),
        "value_type": (record.get("data") or {}).get("value_type"),
        "seed": record.get("seed"),
        "suite": "quick" if record.get("suite") == "quick" else "full",
        "created": record.get("created"),
        "commit": git.get("commit"),
        "dirty": git.get("dirty"),
        "command": record.get("command"),
        "samples": record.get("samples"),
        "epochs": training.get("epochs_completed"),
        "train_seconds": training.get("train_seconds"),
        "eval_seconds": record.get("eval_seconds"),
        "wall_seconds": record.get("wall_seconds"),
        "n_parameters": record.get("n_parameters"),
        "model_config": record.get("model_config") or {},
        "train_config": record.get("train_config") or {},
        "eval_settings": record.get("eval_settings") or {},
        "reproduces": record.get("reproduces"),  # the published result a `dgmbench reproduce` run targets
    }


def _metric_columns(metric: dict) -> dict:
    protocol = metric.get("protocol") or {}
    value = _number(metric.get("value"))
    low, high = log_z_interval(value, metric.get("unit", ""), protocol)
    return {
        "metric": metric["name"],
        "value": value,
        "unit": metric.get("unit", ""),
        "stderr": _number(metric.get("stderr")),
        "kind": metric.get("kind", ""),
        "estimator": protocol.get("estimator") or metric.get("kind", ""),
        "higher_is_better": metric.get("higher_is_better"),
        "n": metric.get("n"),
        "split": protocol.get("split"),
        "extractor": protocol.get("extractor"),
        "interval_low": low,
        "interval_high": high,
        "protocol": protocol,
    }


def log_z_interval(value: float, unit: str, protocol: dict) -> tuple[float, float]:
    """(low, high) of an NLL-type value whose log Z is an AIS estimate, at log Z -/+ 3 sd.

    NLL(x) = log Z - log p~(x), so an error in log Z moves the value by the same amount in
    nats; the recorded ``nll_at_log_z_*`` are used where the metric stored them."""
    if "nll_at_log_z_minus_3sd" in protocol and "nll_at_log_z_plus_3sd" in protocol:
        return _number(protocol["nll_at_log_z_minus_3sd"]), _number(protocol["nll_at_log_z_plus_3sd"])
    keys = ("log_z", "log_z_minus_3sd", "log_z_plus_3sd")
    if unit != "nats" or not all(protocol.get(k) is not None for k in keys):
        return math.nan, math.nan
    log_z = float(protocol["log_z"])
    return value + float(protocol["log_z_minus_3sd"]) - log_z, value + float(protocol["log_z_plus_3sd"]) - log_z


def baseline_entries(directory: str | Path | None = None):
    """(file, entry) for every ``[[result]]`` of ``baselines/*.toml``: the one reader of the
    published numbers (the leaderboard's rows and `dgmbench reproduce`'s reproductions)."""
    directory = Path(directory) if directory else DEFAULT_BASELINES
    for path in sorted(directory.glob("*.toml")):
        with open(path, "rb") as handle:
            try:
                entries = tomllib.load(handle).get("result", [])
            except tomllib.TOMLDecodeError as error:
                raise ValueError(f"malformed baselines file {path}: {error}") from None
        for entry in entries:
            yield path, entry


def load_baselines(directory: str | Path | None = None) -> pd.DataFrame:
    """Published numbers from ``baselines/*.toml``: one row per ``[[result]]``."""
    rows = []
    for path, entry in baseline_entries(directory):
        citation = entry.get("citation", "")
        rows.append({
            "board": published_board(entry),
            "model": entry.get("model", ""),
            "label": entry.get("label", entry.get("model", "")),
            "metric": entry["metric"],
            "value": float(entry["value"]),
            "unit": entry.get("unit", ""),
            "kind": entry.get("kind", ""),
            "estimator": entry.get("kind", ""),
            "citation": citation,
            "cite_key": entry.get("cite_key") or cite_key(citation),
            "protocol": entry.get("protocol", ""),
            "file": path.name,
            "source": "published",
            "reproduce": entry.get("reproduce"),  # the protocol our reproduction of it runs, if any
        })
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)


def published_board(entry: dict) -> str:
    """The board a published row is shown on. A sample metric computed on another feature
    network than our records of that board use (``features = "inception-v3"`` on MNIST, whose
    FIDs we compute on the domain CNN) gets a board of its own, ``mnist/dequantized:inception-v3``:
    FIDs on different features are different quantities and never share a column."""
    features = entry.get("features")
    return f"{entry['board']}{FEATURES_SEPARATOR}{features}" if features else entry["board"]


_STOP_WORDS = {"a", "an", "the", "on", "of", "for", "and", "with", "to", "in", "via", "by"}


def cite_key(citation: str) -> str:
    """A BibTeX-style key from a citation text: first author's surname, year, first title
    word, e.g. "van den Oord, A., ... (2016). Pixel Recurrent ..." -> "vandenoord2016pixel"."""
    year = re.search(r"\((\d{4})[a-z]?\)", citation) or re.search(r"\b(19|20)\d{2}\b", citation)
    year_text = year.group(1) if year and len(year.group(1)) == 4 else (year.group(0) if year else "")
    author = re.split(r",|\(| et al| &", citation, maxsplit=1)[0]
    surname = re.sub(r"[^a-z]", "", author.lower()) or "anon"
    title = citation.split(").", 1)[1] if ")." in citation else ""
    words = [w for w in re.findall(r"[a-z]+", title.lower()) if w not in _STOP_WORDS]
    return f"{surname}{year_text}{words[0] if words else ''}"
