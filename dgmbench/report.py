"""Leaderboards and paper tables, built from :func:`dgmbench.load_results`.

One table per board (dataset/variant): fixed and dynamic binarization, or 8-bit and
dequantized data, never share a table. Our rows are one configuration each (records
grouped by ``config_hash``; of repeats of one seed the latest counts) and show mean ± std
over seeds; published numbers (``baselines/*.toml``) get their own rows, marked and
cited, carrying only the published value. The aggregation is a pandas group-by over the
tidy results frame, pivoted to rows x metrics.

Headers say what a number is: its unit, its estimator (exact, bound, estimate) and, for
the sample metrics, the feature space. KID is a squared MMD whose size depends on the
feature network, so it is shown with its scale (x10^3 on Inception features, as in the
literature; otherwise the power of 10^3 that makes the board's values readable) and the
extractor is named per board. Values whose log Z comes from AIS also show the range
implied by AIS's log Z +- 3 sd.

Formats: markdown, LaTeX (pandas Styler, booktabs), CSV (tidy aggregated rows), HTML
(one table per board; :func:`write_site` writes a static site with sortable tables,
sample grids, training curves and each row's records and commands).
"""
from __future__ import annotations

import html
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from dgmbench.results_frame import FEATURES_SEPARATOR, load_baselines, load_results  # noqa: F401  (re-exported)

FORMATS = ("markdown", "latex", "html", "csv")

# metric -> (title, decimals); the order is the column order.
METRICS = {
    "nll": ("NLL", 2),
    "bpd": ("bits/dim", 3),
    "iwae_nll": ("IWAE NLL", 2),
    "iwae_nll_bpd": ("IWAE bits/dim", 3),
    "neg_elbo": ("-ELBO", 2),
    "neg_elbo_bpd": ("-ELBO bits/dim", 3),
    "ais_nll": ("AIS NLL", 2),
    "raise_nll": ("RAISE NLL", 2),
    "vlb_nll": ("-VLB, AIS", 2),
    "fid": ("FID", 2),
    "kid": ("KID", 2),
    "is": ("IS", 2),
    "precision": ("Precision", 3),
    "recall": ("Recall", 3),
    "density": ("Density", 3),
    "coverage": ("Coverage", 3),
    "prd_f8": ("PRD F8", 3),
    "prd_f1_8": ("PRD F1/8", 3),
    "parzen_ll": ("Parzen LL*", 1),
    "memorization_ratio": ("Train/held-out NN ratio", 3),
    "copy_fraction": ("Copy fraction", 3),
}
# The default columns: each family's headline numbers, plus sample quality for everyone.
HEADLINE = {
    "autoregressive": ("nll",),
    "flows": ("nll", "toy_kl"),
    "mixture": ("nll",),
    "latent": ("nll", "iwae_nll", "neg_elbo"),
    "energy": ("nll", "ais_nll", "raise_nll", "vlb_nll"),
    "gans": ("fid", "kid", "precision", "recall", "modes_captured", "high_quality_fraction", "mode_reverse_kl",
             "translation_mae", "translation_pixel_accuracy", "cycle_mae"),
}
ALWAYS_SHOWN = ("fid", "kid")
SAMPLE_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "prd_f8", "prd_f1_8")
HIGHER_IS_BETTER = {"is", "precision", "recall", "density", "coverage", "prd_f8", "prd_f1_8", "parzen_ll",
                    "memorization_ratio", "modes_captured", "high_quality_fraction", "translation_pixel_accuracy"}
KIND_TEXT = {"vlb_nll": "estimate of a bound"}  # a bound whose log Z is itself estimated
NOTES = {
    "nll": "NLL: exact negative log-likelihood on the test split (lower is better).",
    "bpd": "bits/dim: NLL / (D ln 2); on dequantized data an upper bound on the discrete data's bits/dim "
           "(Theis et al. 2016).",
    "iwae_nll": "IWAE NLL: -log of the k-sample importance-weighted estimate of p(x) (an upper bound on NLL in expectation).",
    "neg_elbo": "-ELBO: negative evidence lower bound (an upper bound on NLL).",
    "ais_nll": "AIS NLL: NLL with log Z estimated by annealed importance sampling (tends to be optimistic); "
               "[a, b] is its range over AIS's log Z ± 3 sd.",
    "raise_nll": "RAISE NLL: reverse-annealing estimate (conservative); AIS and RAISE bracket the true NLL.",
    "vlb_nll": "-VLB, AIS: negative variational lower bound with log Z from AIS. log Z is an estimate, so the "
               "value is an estimate of a bound, not a bound: it can fall below the exact NLL. [a, b] is its "
               "range over AIS's log Z ± 3 sd.",
    "parzen_ll": "*Parzen-window log-likelihood is a weak, biased estimate (Theis et al. 2016); higher is better.",
    "fid": "FID/KID: lower is better; IS, precision, recall, density, coverage, PRD: higher is better.",
    "kid": "KID: unbiased MMD² with the cubic polynomial kernel (x·y/d + 1)³ on the features named below, "
           "at the scale in the header (×10^k, or raw); it scales with the feature space, so compare it only "
           "within a board.",
}
PUBLISHED_MARK = "†"
# what a board's rows are built from: our records' columns and the published rows' columns
TIDY_COLUMNS = ["row", "label", "source", "model", "family", "value_type", "metric", "value", "unit", "kind",
                "interval_low", "interval_high", "seed", "epochs", "record", "command", "citation", "cite_key",
                "protocol", "stderr", "reproduces"]
REPRODUCTION_HEADER = "Published (gap ± se)"
REPRODUCTION_NOTE = ("Published (gap ± se): the published number a row reproduces (`dgmbench reproduce`), our value "
                     "minus it, and the gap's standard error (the test-set standard error of our mean, combined with "
                     "the spread over seeds; the papers give none); 'within' means within the reproduction's "
                     "tolerance. `dgmbench leaderboard --reproductions` lists every reproduction with its status.")


@dataclass
class Leaderboard:
    """One board: rows x metrics, with what the renderers need to say what each number is."""

    board: str
    rows: pd.DataFrame  # index: row id; label, source, model, seeds, epochs, citation, cite_key, ...
    mean: pd.DataFrame  # rows x metrics (scaled for display: see `scales`)
    std: pd.DataFrame
    low: pd.DataFrame  # interval from AIS's log Z -/+ 3 sd, where there is one
    high: pd.DataFrame
    columns: list[str]
    units: dict[str, str]
    kinds: dict[str, str]
    scales: dict[str, int] = field(default_factory=dict)  # metric -> power of ten applied
    extractors: dict[str, str] = field(default_factory=dict)  # metric -> feature space text
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # row id -> name, metric, published, ours, gap, se, tolerance, within, text (rows of ours
    # that reproduce a published number; empty when none does)
    reproductions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def reproduction_text(self, row) -> str:
        if self.reproductions.empty or row not in self.reproductions.index:
            return ""
        return self.reproductions.at[row, "text"]

    def best(self, metric: str) -> set:
        values = self.mean[metric].dropna()
        if values.empty:
            return set()
        target = values.max() if self.higher_is_better.get(metric) else values.min()
        return set(values.index[np.isclose(values, target, rtol=1e-12, atol=0)])

    def published(self) -> pd.DataFrame:
        return self.rows[self.rows.source == "published"]


# --- building ----------------------------------------------------------------------------


def build_leaderboards(
    results: pd.DataFrame,
    baselines: pd.DataFrame | None = None,
    dataset: str | None = None,
    metrics: list[str] | None = None,
    models: list[str] | None = None,
    suite: str = "all",
    all_metrics: bool = False,
) -> dict[str, Leaderboard]:
    """board -> Leaderboard from a :func:`load_results` frame and :func:`load_baselines`.

    `dataset` is a dataset name (all its boards) or an exact board; `metrics` the columns
    in order (default: the families' headline metrics, or every metric with `all_metrics`);
    `models` keeps only those models' rows (ours and published); `suite` is all/quick/full.
    """
    ours = results.copy()
    published = baselines.copy() if baselines is not None else pd.DataFrame(columns=["board", "model", "metric"])
    if suite in ("quick", "full"):
        ours = ours[ours.suite == suite]
    elif suite != "all":
        raise ValueError(f"unknown suite {suite!r}; valid: all, quick, full")
    if dataset:
        ours, published = (f[(f.board == dataset) | (f.board.str.split("/").str[0] == dataset)] for f in (ours, published))
    if models:
        known = sorted({m for m in set(results.model) | set(published.model) if isinstance(m, str) and m})
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValueError(f"no results for model(s) {', '.join(unknown)}; models with results: {', '.join(known)}")
        ours, published = ours[ours.model.isin(models)], published[published.model.isin(models)]
    if metrics:
        present = set(ours.metric) | set(published.metric)
        unknown = [m for m in metrics if m not in present]
        if unknown:
            raise ValueError(f"no results for metric(s) {', '.join(unknown)}; metrics with results: "
                             f"{', '.join(sorted(present, key=_metric_order))}")

    higher = {**{m: m in HIGHER_IS_BETTER for m in METRICS},
              **results.dropna(subset=["higher_is_better"]).groupby("metric").higher_is_better.first().to_dict()}
    boards = {}
    for board in sorted(set(ours.board) | set(published.board)):
        built = _build_board(board, ours[ours.board == board], published[published.board == board],
                             metrics, all_metrics, higher)
        if built is not None:
            boards[board] = built
    return boards


def _latest_per_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """Of repeated records of one (configuration, seed), keep the latest."""
    if frame.empty:
        return frame
    latest = frame.sort_values("created").groupby(["config_hash", "seed"]).record.transform("last")
    return frame[frame.record == latest.reindex(frame.index)]


def _row_labels(frame: pd.DataFrame) -> pd.Series:
    """config_hash -> 'model (quick) [options that differ from the model's other rows]'."""
    labels = {}
    first = frame.drop_duplicates("config_hash").set_index("config_hash")
    for (model, suite), group in first.groupby(["model", "suite"]):
        configs = {chash: _flat_config(row) for chash, row in group.iterrows()}
        prefix = model + (" (quick)" if suite == "quick" else "")
        mine = {chash: _distinguishing(configs, chash) for chash in configs}
        for text in {t for t in mine.values() if list(mine.values()).count(t) > 1}:
            # options cut off at the first few keys can coincide: add what tells these apart
            # (kept after the shared text, so each label still says how it differs from the rest)
            clash = {chash: configs[chash] for chash, t in mine.items() if t == text}
            for chash in clash:
                mine[chash] = f"{text[:-1]}; {_distinguishing(clash, chash)[2:-1]}]"
        for chash, text in mine.items():
            if list(mine.values()).count(text) > 1 or not text and len(mine) > 1:
                text = f"{text[:-1]}, #{chash[:6]}]" if text else f" [#{chash[:6]}]"
            labels[chash] = prefix + text
    return pd.Series(labels)


def _flat_config(row) -> dict:
    train = {k: v for k, v in row.train_config.items() if k not in ("seed", "eval_batch_size")}
    return {**row.model_config, **train, **row.eval_settings}


def _distinguishing(configs: dict[str, dict], chash: str, most: int = 4) -> str:
    if len(configs) < 2:
        return ""
    mine = configs[chash]
    keys = [k for k in mine if any(other.get(k) != mine[k] for other in configs.values())]
    shown = ", ".join(f"{k}={mine[k]}" for k in keys[:most]) + (", ..." if len(keys) > most else "")
    return f" [{shown or chash[:6]}]"


def _build_board(board, ours, published, metrics, all_metrics, higher) -> Leaderboard | None:
    ours = _latest_per_seed(ours)
    frames = []
    if not ours.empty:  # a row per configuration; published rows per label
        ours = ours.assign(row=ours.config_hash, label=ours.config_hash.map(_row_labels(ours)))
        frames.append(ours)
    if not published.empty:
        frames.append(published.assign(row="published:" + published.label, seed=pd.NA))
    if not frames:
        return None
    tidy = pd.concat(frames, ignore_index=True).reindex(columns=TIDY_COLUMNS)

    present = set(tidy.metric)
    if metrics:
        columns = [m for m in metrics if m in present]
    elif all_metrics:
        columns = sorted(present, key=_metric_order)
    else:
        wanted = set(ALWAYS_SHOWN) | {m for f in set(ours.get("family", [])) for m in HEADLINE.get(f, ("nll",))}
        if "nll" not in present or (ours.get("value_type", pd.Series(dtype=str)) != "binary").any():
            wanted |= {"bpd"}  # bits/dim is how multi-level image data are compared in the literature
        wanted |= set(published.metric) & {m for ms in HEADLINE.values() for m in ms}  # published headline numbers
        # the metric a run reproduces (e.g. a Parzen estimate) is shown beside its published number
        links = ours.get("reproduces", pd.Series(dtype=object))
        wanted |= {link["metric"] for link in links if isinstance(link, dict) and "metric" in link}
        columns = sorted(present & wanted, key=_metric_order)
    if not columns:
        return None
    tidy = tidy[tidy.metric.isin(columns)]

    tidy[["value", "interval_low", "interval_high"]] = tidy[["value", "interval_low", "interval_high"]].astype(float)
    stats = tidy.groupby(["row", "metric"]).agg(
        mean=("value", "mean"), std=("value", "std"), low=("interval_low", "mean"), high=("interval_high", "mean")
    )
    wide = {name: stats[name].unstack("metric").reindex(columns=columns) for name in ("mean", "std", "low", "high")}
    rows = _row_table(tidy)
    wide = {name: table.reindex(rows.index) for name, table in wide.items()}
    rows = rows[wide["mean"].notna().any(axis=1)]

    units = {m: _joined(tidy.loc[tidy.metric == m, "unit"]) for m in columns}
    kinds = {m: KIND_TEXT.get(m) or _joined(tidy.loc[(tidy.metric == m) & (tidy.kind != "score"), "kind"]) for m in columns}
    extractors = _extractors(ours, columns)
    scales = {}
    if "kid" in columns:
        scales["kid"] = kid_scale(wide["mean"]["kid"], extractors.get("kid", ""))
    for metric, power in scales.items():
        for name in ("mean", "std", "low", "high"):
            wide[name][metric] = wide[name][metric] * 10.0**power

    order = _sort_rows(rows, wide["mean"], columns[0], higher.get(columns[0], False))
    board_table = Leaderboard(
        board=board, rows=rows.loc[order], **{k: v.loc[order] for k, v in wide.items()},
        columns=columns, units=units, kinds=kinds, scales=scales, extractors=extractors,
        higher_is_better={m: bool(higher.get(m, False)) for m in columns},
    )
    board_table.reproductions = _reproductions(ours, board_table.rows.index, published)
    board_table.notes = _notes(board_table, ours)
    if not board_table.reproductions.empty:
        board_table.notes.append(REPRODUCTION_NOTE)
    return board_table


def _reproductions(ours: pd.DataFrame, row_ids, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our rows whose records reproduce a published number: that number beside ours, the gap
    (ours - published) and its standard error (:func:`dgmbench.reproduce.combined`). A row
    made under an earlier protocol of its reproduction (options since changed in the
    baselines' ``[result.reproduce]``) is not set beside the published number."""
    from dgmbench.reproduce import _same_options, combined

    columns = ["name", "metric", "published", "ours", "gap", "se", "tolerance", "within", "text"]
    if ours.empty or "reproduces" not in ours:
        return pd.DataFrame(columns=columns)
    linked = ours[ours.reproduces.map(lambda link: isinstance(link, dict) and "published" in link)]
    current = {}
    if published is not None and "reproduce" in published:
        current = {t["name"]: SimpleNamespace(model_options=dict(t.get("model_options", {})),
                                              train_options=dict(t.get("train_options", {})),
                                              eval_options=dict(t.get("eval_options", {})))
                   for t in published.reproduce if isinstance(t, dict) and "name" in t}
    found = {}
    for row_id, group in linked.groupby("row"):
        link = group.reproduces.iloc[0]
        repro = current.get(link.get("name", ""))
        first = group.iloc[0]
        identity = {key: first.get(key) or {} for key in ("model_config", "train_config", "eval_settings")}
        if repro is not None and not _same_options(repro, identity):
            continue  # made under an earlier protocol of this reproduction: not beside the published number
        values = group[group.metric == link.get("metric")].dropna(subset=["value"])
        if row_id not in row_ids or values.empty:
            continue
        stderrs = [None if pd.isna(v) else float(v) for v in values.stderr]
        mean, se = combined([float(v) for v in values.value], stderrs)
        published, tolerance = float(link["published"]), float(link.get("tolerance", math.nan))
        gap = mean - published
        d = _decimals(link["metric"])
        within = bool(abs(gap) <= tolerance)
        text = f"{published:.{d}f} ({gap:+.{d}f}" + (f" ± {se:.{d}f}" if se is not None else "") + ")"
        text += " within" if within else ""
        found[row_id] = [link.get("name", ""), link["metric"], published, mean, gap, se, tolerance, within, text]
    return pd.DataFrame.from_dict(found, orient="index", columns=columns)


def _row_table(tidy: pd.DataFrame) -> pd.DataFrame:
    def unique(values):
        return sorted({v for v in values if isinstance(v, str) and v})

    return tidy.groupby("row").agg(
        source=("source", "first"),
        model=("model", "first"),
        label=("label", "first"),
        seeds=("seed", "nunique"),
        epochs=("epochs", lambda s: "/".join(str(int(e)) for e in sorted(set(s.dropna())))),
        records=("record", unique),
        commands=("command", unique),
        citation=("citation", lambda s: "; ".join(unique(s))),
        cite_key=("cite_key", lambda s: ",".join(unique(s))),
        protocol=("protocol", lambda s: "; ".join(unique(s))),  # published rows' protocol text
    )


def _sort_rows(rows, mean, first, higher) -> list:
    key = mean[first] * (-1 if higher else 1)
    fallback = mean.apply(lambda r: r.dropna().iloc[0] if r.notna().any() else math.inf, axis=1)
    frame = pd.DataFrame({"published": rows.source == "published", "key": key.fillna(np.inf), "fallback": fallback})
    return list(frame.sort_values(["published", "key", "fallback"], kind="stable").index)


def _joined(values: pd.Series) -> str:
    return "/".join(sorted({v for v in values.dropna() if v}))


def _metric_order(metric: str) -> tuple:
    names = list(METRICS)
    return (names.index(metric), metric) if metric in names else (len(names), metric)


def _extractors(ours: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """metric -> 'digits-cnn' (the feature network its records name), for sample metrics."""
    found = {}
    if ours.empty:
        return found
    for metric in columns:
        names = _joined(ours.loc[ours.metric == metric, "extractor"])
        if names:
            found[metric] = names
    return found


def kid_scale(values: pd.Series, extractor: str) -> int:
    """The power of ten KID is shown with: 3 on Inception features (the literature's KID x
    10^3); otherwise the multiple of 3 that puts the board's median |value| in [1, 1000)."""
    if "inception" in extractor.lower():
        return 3
    typical = values.abs().median()
    if not np.isfinite(typical) or typical == 0:
        return 0
    power = 0
    while typical * 10.0**power >= 1000:
        power -= 3
    while typical * 10.0**power < 1:
        power += 3
    return power


def _feature_note(ours: pd.DataFrame) -> str:
    """Which feature network the sample metrics of this board used (from the records)."""
    sample = ours[ours.metric.isin(SAMPLE_METRICS + ("is",)) & ours.extractor.notna()] if not ours.empty else ours
    if sample.empty:
        return ""
    parts = []
    for extractor, group in sample.groupby("extractor"):
        protocol = group.iloc[0].protocol
        feature = group[group.metric == "fid"].protocol
        feature = feature.iloc[0] if len(feature) else protocol
        details = [f"{feature.get('layer')} layer" if feature.get("layer") else "",
                   f"{feature.get('feature_dim')}-d" if feature.get("feature_dim") else "",
                   f"weights sha256 {feature['weights_sha256'][:12]}" if feature.get("weights_sha256") else ""]
        details = ", ".join(d for d in details if d)
        metrics = ", ".join(sorted(set(group.metric), key=_metric_order))
        parts.append(f"{extractor}{f' ({details})' if details else ''} for {metrics}")
    return "Features on this board: " + "; ".join(parts) + "."


def _notes(table: Leaderboard, ours: pd.DataFrame) -> list[str]:
    notes = ["Ours: mean ± std over seeds (one seed: its value); best entry per column in bold."]
    board, _, features = table.board.partition(FEATURES_SEPARATOR)
    if features:
        notes.append(f"Published values computed on {features} features: a different quantity from the {board} "
                     "board's sample metrics (computed on that dataset's domain classifier), so they are "
                     "listed here, apart, and never compared with ours.")
    notes += [NOTES[m] for m in table.columns if m in NOTES]
    feature = _feature_note(ours[ours.metric.isin(table.columns)] if not ours.empty else ours)
    if feature:
        notes.append(feature)
    return notes


# --- cells and headers ------------------------------------------------------------------


def _decimals(metric: str) -> int:
    return METRICS.get(metric, (metric, 3))[1]


def cell_text(table: Leaderboard, row, metric: str, plus_minus: str = " ± ") -> str:
    mean = table.mean.at[row, metric]
    if pd.isna(mean):
        return ""
    d = _decimals(metric)
    text = f"{mean:.{d}f}"
    std = table.std.at[row, metric]
    if table.rows.at[row, "source"] == "ours" and table.rows.at[row, "seeds"] > 1 and pd.notna(std):
        text += f"{plus_minus}{std:.{d}f}"
    low, high = table.low.at[row, metric], table.high.at[row, metric]
    if pd.notna(low) and pd.notna(high):
        text += f" [{low:.{d}f}, {high:.{d}f}]"
    return text


def header_text(table: Leaderboard, metric: str, style: str = "unicode") -> str:
    """e.g. 'NLL (nats, exact)', 'KID ×10³ (digits-cnn features)'; style 'latex' for TeX."""
    title = METRICS.get(metric, (metric, 3))[0]
    power = table.scales.get(metric)
    if power is not None:
        if power == 0:
            title += ", raw MMD²" if style == "unicode" else ", raw MMD$^2$"
        elif style == "latex":
            title += rf" $\times 10^{{{power}}}$"
        else:
            title += f" ×10^{power}"
    details = []
    unit = table.units.get(metric, "")
    if unit and unit != title:
        details.append(unit)
    if table.kinds.get(metric):
        details.append(table.kinds[metric])
    if metric in table.extractors and metric in SAMPLE_METRICS:
        details.append(f"{table.extractors[metric]} features")
    if style == "latex":
        title = latex_escape(title, keep_math=True)
        details = [latex_escape(d) for d in details]
    return title + (f" ({', '.join(details)})" if details else "")


def latex_escape(text: str, keep_math: bool = False) -> str:
    replacements = [("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                    ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}"),
                    ("$", r"\$"), ("±", r"$\pm$"), ("×", r"$\times$"), ("²", r"$^2$"), ("³", r"$^3$"),
                    ("·", r"$\cdot$"), ("†", r"$^\dagger$")]
    if keep_math:  # text that already holds $...$ math from header_text
        replacements = [r for r in replacements if r[0] not in "\\{}^$"]
    out = []
    for char in text:
        out.append(dict(replacements).get(char, char))
    return "".join(out)


# --- renderers ----------------------------------------------------------------------------


def render(boards: dict[str, Leaderboard], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    return {"markdown": render_markdown, "latex": render_latex, "html": render_html, "csv": render_csv}[fmt](boards)


def _citations(table: Leaderboard) -> list[tuple[int, str, pd.Series]]:
    return [(i, row_id, row) for i, (row_id, row) in enumerate(table.published().iterrows(), 1)]


def render_markdown(boards: dict[str, Leaderboard]) -> str:
    out = []
    for board, table in boards.items():
        header = ["Model", "Source", "Seeds", "Epochs"] + [header_text(table, m) for m in table.columns]
        reproducing = not table.reproductions.empty
        header += [REPRODUCTION_HEADER] if reproducing else []
        out += [f"### {board}\n", "| " + " | ".join(header) + " |",
                "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
        numbers = {row_id: n for n, row_id, _ in _citations(table)}
        best = {m: table.best(m) for m in table.columns}
        for row_id, row in table.rows.iterrows():
            label = row.label + (f" [{numbers[row_id]}]" if row_id in numbers else "")  # Source says "published"
            cells = [label, row.source, str(row.seeds or "") if row.source == "ours" else "", row.epochs or ""]
            for metric in table.columns:
                text = cell_text(table, row_id, metric)
                cells.append(f"**{text}**" if text and row_id in best[metric] else text)
            cells += [table.reproduction_text(row_id)] if reproducing else []
            out.append("| " + " | ".join(cells) + " |")
        out += ["", " ".join(table.notes)]
        for n, _, row in _citations(table):
            out.append(f"[{n}] {row.citation} Protocol: {row.protocol}")
        out.append("")
    return "\n".join(out) if out else "(no results)\n"


def render_latex(boards: dict[str, Leaderboard]) -> str:
    """booktabs tables through pandas' Styler; published rows below a rule, marked with a
    dagger and cited (\\cite keys from baselines/, or derived from the citation text)."""
    out = []
    for board, table in boards.items():
        best = {m: table.best(m) for m in table.columns}
        headers = ["Model", "Seeds"] + [header_text(table, m, style="latex") for m in table.columns]
        reproducing = not table.reproductions.empty
        headers += [latex_escape(REPRODUCTION_HEADER)] if reproducing else []
        cells, bold = [], []
        for row_id, row in table.rows.iterrows():
            label = latex_escape(row.label)
            if row.source == "published":
                label += r"$^\dagger$" + (rf"~\cite{{{row.cite_key}}}" if row.cite_key else "")
            line = [label, str(row.seeds) if row.source == "ours" else ""]
            line += [latex_escape(cell_text(table, row_id, m)) for m in table.columns]
            line += [latex_escape(table.reproduction_text(row_id))] if reproducing else []
            cells.append(line)
            bold.append([False, False] + [row_id in best[m] and bool(line[2 + i]) for i, m in enumerate(table.columns)]
                        + ([False] if reproducing else []))
        frame = pd.DataFrame(cells, columns=headers)
        styles = pd.DataFrame(np.where(bold, "font-weight: bold;", ""), columns=headers)
        keys = sorted({k for keys in table.published().cite_key for k in keys.split(",") if k})
        caption = (latex_escape(board) + r": ours are mean $\pm$ std over seeds; best per column in bold"
                   + (rf"; $^\dagger$ published \cite{{{','.join(keys)}}}" if keys else "") + ".")
        latex = (
            frame.style.hide(axis="index")
            .apply(lambda _: styles.values, axis=None)
            .to_latex(hrules=True, column_format="l" + "r" * (len(headers) - 1), caption=caption,
                      label="tab:" + board.replace("/", "-").replace("_", "-").replace(FEATURES_SEPARATOR, "-"), position="t",
                      position_float="centering", convert_css=True)
        )
        lines = latex.splitlines()
        n_ours = int((table.rows.source == "ours").sum())
        if 0 < n_ours < len(table.rows):
            first_row = lines.index(r"\midrule") + 1
            lines.insert(first_row + n_ours, r"\midrule")
        notes = latex_escape(" ".join(table.notes))
        lines.insert(lines.index(r"\end{table}"), r"\par\smallskip{\footnotesize " + notes + "}")
        out.append(r"% requires \usepackage{booktabs}")
        out += lines
        cited = dict.fromkeys(f"% {row.cite_key}: {row.citation}" for _, _, row in _citations(table))
        out += [line.replace("\n", " ") for line in cited]
        out.append("")
    return "\n".join(out)


def render_csv(boards: dict[str, Leaderboard]) -> str:
    """One line per (board, row, metric): the aggregated numbers with what they are."""
    lines = []
    for board, table in boards.items():
        for row_id, row in table.rows.iterrows():
            for metric in table.columns:
                if pd.isna(table.mean.at[row_id, metric]):
                    continue
                scale = 10.0 ** -table.scales.get(metric, 0)
                lines.append({
                    "board": board, "row": row.label, "source": row.source, "model": row.model,
                    "seeds": row.seeds if row.source == "ours" else None, "metric": metric,
                    "mean": table.mean.at[row_id, metric] * scale, "std": table.std.at[row_id, metric] * scale,
                    "interval_low": table.low.at[row_id, metric] * scale,
                    "interval_high": table.high.at[row_id, metric] * scale,
                    "unit": table.units[metric], "kind": table.kinds[metric],
                    "extractor": table.extractors.get(metric, ""), "best": row_id in table.best(metric),
                    "citation": row.citation, "cite_key": row.cite_key,
                    **_reproduction_fields(table, row_id, metric),
                })
    table = pd.DataFrame(lines)
    if not table.empty:
        table["seeds"] = table["seeds"].astype("Int64")
    return table.to_csv(index=False)


def _reproduction_fields(table: Leaderboard, row_id, metric: str) -> dict:
    """CSV columns of a row that reproduces a published number (on that metric's line)."""
    if table.reproductions.empty or row_id not in table.reproductions.index:
        return {}
    found = table.reproductions.loc[row_id]
    if found.metric != metric:
        return {}
    return {"reproduces": found["name"], "published": found.published, "gap": found.gap, "gap_se": found.se,
            "tolerance": found.tolerance, "within_tolerance": found.within}


SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const ascending = th.dataset.order !== "asc";
  th.dataset.order = ascending ? "asc" : "desc";
  const key = row => { const v = row.cells[column].dataset.sort; return v === "" || v === undefined ? null : (isNaN(v) ? v : Number(v)); };
  [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);
    return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
  }).forEach(row => body.appendChild(row));
}));
"""
STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; font-size: 90%; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ccc; text-align: right; }
th { cursor: pointer; background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
tr.published { color: #555; font-style: italic; } .notes { max-width: 60em; font-size: 90%; }
figure { display: inline-block; margin: 0.5em; text-align: center; font-size: 80%; }
figure img { image-rendering: pixelated; max-width: 260px; }
"""


def html_table(table: Leaderboard, links: dict | None = None) -> str:
    """A sortable <table>; `links` maps a row id to the page anchor of its records."""
    best = {m: table.best(m) for m in table.columns}
    head = ["Model", "Source", "Seeds", "Epochs"] + [header_text(table, m) for m in table.columns]
    reproducing = not table.reproductions.empty
    head += [REPRODUCTION_HEADER] if reproducing else []
    out = ['<table class="sortable">', "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
           + "</tr></thead>", "<tbody>"]
    for row_id, row in table.rows.iterrows():
        label = html.escape(row.label)
        if links and row_id in links:
            label = f'<a href="{links[row_id]}">{label}</a>'
        if row.source == "published":
            label += f' <span title="{html.escape(row.citation)}">{PUBLISHED_MARK}</span>'
        cells = [f'<td data-sort="{html.escape(row.label)}">{label}</td>', f"<td data-sort=\"{row.source}\">{row.source}</td>",
                 f'<td data-sort="{row.seeds if row.source == "ours" else ""}">{row.seeds if row.source == "ours" else ""}</td>',
                 f'<td data-sort="{html.escape(str(row.epochs or ""))}">{html.escape(str(row.epochs or ""))}</td>']
        for metric in table.columns:
            mean = table.mean.at[row_id, metric]
            text = html.escape(cell_text(table, row_id, metric))
            if text and row_id in best[metric]:
                text = f"<b>{text}</b>"
            cells.append(f'<td data-sort="{"" if pd.isna(mean) else repr(float(mean))}">{text}</td>')
        if reproducing:
            gap = table.reproductions.at[row_id, "gap"] if row_id in table.reproductions.index else None
            cells.append(f'<td data-sort="{"" if gap is None else repr(float(gap))}">'
                         f"{html.escape(table.reproduction_text(row_id))}</td>")
        out.append(f'<tr class="{row.source}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(boards: dict[str, Leaderboard]) -> str:
    body = []
    for board, table in boards.items():
        body += [f"<h2>{html.escape(board)}</h2>", html_table(table), _html_notes(table)]
    return _page("dgmbench leaderboard", "\n".join(body))


def _html_notes(table: Leaderboard) -> str:
    items = [f"<p>{html.escape(' '.join(table.notes))}</p>"]
    for n, _, row in _citations(table):
        items.append(f"<p>{PUBLISHED_MARK}[{n}] {html.escape(row.label)}: {html.escape(row.citation)} "
                     f"Protocol: {html.escape(row.protocol)}</p>")
    return '<div class="notes">' + "\n".join(items) + "</div>"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n<script>{SORT_SCRIPT}</script>\n</body></html>\n")


def board_page_name(board: str) -> str:
    return board.replace("/", "__").replace(FEATURES_SEPARATOR, "--") + ".html"


def write_site(boards: dict[str, Leaderboard], output: Path, results_dir: Path) -> list[Path]:
    """A static site: index.html and one page per board with its sortable table, every
    row's sample grid (and training curves where the run saved them), and each record's
    command with a link to the record itself. Images and records are copied into
    `output`, so the folder can be published as it is."""
    output = Path(output)
    results_dir = Path(results_dir)
    for sub in ("samples", "records"):
        (output / sub).mkdir(parents=True, exist_ok=True)
    pages = []
    for board, table in boards.items():
        links = {row_id: f"#row-{i}" for i, row_id in enumerate(table.rows.index) if table.rows.at[row_id, "source"] == "ours"}
        sections = [f'<p><a href="index.html">all boards</a></p><h1>{html.escape(board)}</h1>',
                    html_table(table, links), _html_notes(table), "<h2>Runs</h2>"]
        for i, (row_id, row) in enumerate(table.rows.iterrows()):
            if row.source != "ours":
                continue
            figures = []
            for record in row.records:
                record_path = results_dir / "records" / f"{record}.json"
                if record_path.is_file():
                    shutil.copyfile(record_path, output / "records" / record_path.name)
                for suffix, caption in (("", "samples"), ("__curves", "training curves")):
                    image = results_dir / "samples" / f"{record}{suffix}.png"
                    if image.is_file():
                        shutil.copyfile(image, output / "samples" / image.name)
                        figures.append(f'<figure><img src="samples/{html.escape(image.name)}" alt="{caption} of '
                                       f'{html.escape(record)}"><figcaption>{caption}<br>{html.escape(record)}'
                                       f"</figcaption></figure>")
            commands = "".join(
                f'<li><code>{html.escape(_command_of(results_dir, record))}</code> '
                f'(<a href="records/{html.escape(record)}.json">record</a>)</li>' for record in row.records
            )
            sections.append(f'<section id="row-{i}"><h3>{html.escape(row.label)}</h3>'
                            f"<ul>{commands}</ul>{''.join(figures)}</section>")
        page = output / board_page_name(board)
        page.write_text(_page(f"dgmbench: {board}", "\n".join(sections)))
        pages.append(page)
    index = "".join(f'<li><a href="{board_page_name(b)}">{html.escape(b)}</a> ({len(t.rows)} rows)</li>'
                    for b, t in boards.items())
    (output / "index.html").write_text(_page("dgmbench leaderboards", f"<h1>dgmbench leaderboards</h1><ul>{index}</ul>"))
    return [output / "index.html", *pages]


def _command_of(results_dir: Path, record: str) -> str:
    path = results_dir / "records" / f"{record}.json"
    try:
        return json.loads(path.read_text()).get("command") or ""
    except (OSError, ValueError):
        return ""


# --- reproductions view (`dgmbench leaderboard --reproductions`) ---------------------------


def reproductions_frame(results_dir: Path, baselines_dir: Path | None = None, workdir: str | Path = ".dgmbench") -> pd.DataFrame:
    """One row per reproduction in baselines/ (``[result.reproduce]``): published and our
    value, the gap and its standard error, and the status (reproduced within tolerance / gap
    explained / gap unexplained / running or interrupted / not run)."""
    from dgmbench.reproduce import load_reproductions, statuses

    reproductions = load_reproductions(baselines_dir)
    found = statuses(reproductions, results_dir, workdir)
    rows = []
    for name in sorted(reproductions, key=lambda n: (reproductions[n].gpu_only, reproductions[n].cpu_hours, n)):
        repro, state = reproductions[name], found[name]
        if state.detail.startswith("interim record"):  # it names the command that continues the run
            note = state.detail
        elif state.status in ("not run", "running or interrupted"):
            note = f"run or continue: dgmbench reproduce {name}" + (" --device cuda" if repro.gpu_only else "")
            note += f" ({state.detail})" if state.detail else ""
        else:
            note = state.explanation or (f"no explanation recorded; {state.detail}" if state.status != "reproduced"
                                         else state.detail)
        rows.append({
            "reproduction": name, "model": repro.model, "board": repro.board, "metric": repro.metric,
            "published": repro.published, "ours": state.ours, "gap": state.gap, "gap_se": state.stderr,
            "tolerance": repro.tolerance, "epochs": state.epochs, "wall_hours": state.wall_hours,
            "cpu_hours": repro.cpu_hours, "gpu_hours": repro.gpu_hours, "gpu_only": repro.gpu_only,
            "status": "reproduced within tolerance" if state.status == "reproduced" else state.status,
            "note": note, "records": ",".join(state.records), "source": repro.source,
        })
    return pd.DataFrame(rows)


def render_reproductions(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "csv":
        return frame.to_csv(index=False)

    def number(value, digits=2):
        return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"

    shown = pd.DataFrame({
        "Reproduction": frame.reproduction + frame.gpu_only.map({True: " (GPU)", False: ""}),
        "Board": frame.board, "Metric": frame.metric,
        "Published": frame.published.map(number), "Ours": frame.ours.map(number),
        "Gap ± se": [("" if pd.isna(g) else f"{g:+.2f}" + ("" if pd.isna(s) else f" ± {s:.2f}"))
                     for g, s in zip(frame.gap, frame.gap_se)],
        "Tolerance": frame.tolerance.map(number), "Epochs": frame.epochs.map(lambda e: "" if pd.isna(e) else str(int(e))),
        "Wall h": frame.wall_hours.map(number), "Est. CPU h / GPU h": [f"{c:g} / {g:g}" for c, g in
                                                                        zip(frame.cpu_hours, frame.gpu_hours)],
        "Status": frame.status, "Explanation or command": frame.note,
    }) if not frame.empty else pd.DataFrame()
    if fmt == "html":
        return _page("dgmbench reproductions", shown.to_html(index=False, escape=True))
    if fmt == "latex":
        return shown.map(latex_escape).style.hide(axis="index").to_latex(hrules=True) if not shown.empty else ""
    if shown.empty:
        return "(no reproductions in baselines/)\n"
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "|".join("---" for _ in shown.columns) + "|"]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n\n(GPU): GPU-only; run with `dgmbench reproduce NAME --device cuda`. " \
                              "Gap = ours - published; se as in the leaderboard's note.\n"
