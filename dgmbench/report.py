"""Leaderboards and paper tables from the results store and the published baselines.

One table per board (dataset/variant): fixed and dynamic binarization, or 8-bit and
dequantized data, never share a table. Our rows group records by configuration and show
mean ± std over seeds; published numbers (``baselines/*.toml``) get their own rows,
marked as published, with their citation in a footnote. Nothing is ever mixed: a
published row carries only the published value.
"""
from __future__ import annotations

import math
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# (metric name, column header, decimals); the order is the column order.
COLUMNS = [
    ("nll", "NLL (nats)", 2),
    ("bpd", "bits/dim", 3),
    ("iwae_nll", "IWAE NLL (nats)", 2),
    ("iwae_nll_bpd", "IWAE bits/dim", 3),
    ("neg_elbo", "-ELBO (nats)", 2),
    ("ais_nll", "AIS NLL (nats)", 2),
    ("raise_nll", "RAISE NLL (nats)", 2),
    ("vlb_nll", "-VLB, AIS (nats)", 2),
    ("fid", "FID", 2),
    ("kid", "KID", 4),
    ("is", "IS", 2),
    ("precision", "Precision", 3),
    ("recall", "Recall", 3),
    ("density", "Density", 3),
    ("coverage", "Coverage", 3),
    ("prd_f8", "PRD F8", 3),
    ("prd_f1_8", "PRD F1/8", 3),
    ("parzen_ll", "Parzen LL* (nats)", 1),
    ("memorization_ratio", "Train/held-out NN ratio", 3),
]
NOTES = {
    "nll": "NLL: exact negative log-likelihood on the test split (lower is better).",
    "iwae_nll": "IWAE NLL: -log of the k-sample importance-weighted estimate of p(x) (an upper bound on NLL in expectation).",
    "neg_elbo": "-ELBO: negative evidence lower bound (upper bound on NLL).",
    "ais_nll": "AIS NLL: NLL with log Z estimated by annealed importance sampling (tends to be optimistic).",
    "raise_nll": "RAISE NLL: reverse-annealing estimate (conservative); AIS and RAISE bracket the true NLL.",
    "vlb_nll": "-VLB: negative variational lower bound with log Z from AIS.",
    "parzen_ll": "*Parzen-window log-likelihood is a weak, biased estimate (Theis et al. 2015); higher is better.",
    "fid": "FID/KID: lower is better; IS, precision, recall, density, coverage, PRD: higher is better.",
}
DEFAULT_BASELINES = Path(__file__).resolve().parent.parent / "baselines"


@dataclass
class Row:
    label: str
    source: str  # "ours" or "published"
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per seed
    seeds: int = 0
    epochs: str = ""
    citation: str = ""
    protocol: str = ""


def load_baselines(directory: Path | None = None) -> list[dict]:
    directory = Path(directory) if directory else DEFAULT_BASELINES
    entries = []
    for path in sorted(directory.glob("*.toml")):
        with open(path, "rb") as handle:
            for entry in tomllib.load(handle).get("result", []):
                entry["_file"] = path.name
                entries.append(entry)
    return entries


def build_tables(records: list[dict], baselines: list[dict], dataset: str | None = None) -> dict[str, list[Row]]:
    """board -> rows; `dataset` filters by dataset name or by an exact board."""

    def wanted(board: str) -> bool:
        return dataset is None or board == dataset or board.split("/")[0] == dataset

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if wanted(record["board"]):
            groups[(record["board"], record["model"], record["config_hash"])].append(record)

    tables: dict[str, list[Row]] = defaultdict(list)
    configs_per_model = defaultdict(dict)
    for (board, model, chash), members in groups.items():
        configs_per_model[(board, model)][chash] = _flat_config(members[0])
    for (board, model, chash), members in sorted(groups.items()):
        by_seed = {r["seed"]: r for r in sorted(members, key=lambda r: r["created"])}  # latest repeat wins
        label = model
        if members[0].get("suite") == "quick":
            label += " (quick)"
        label += _distinguishing_options(configs_per_model[(board, model)], chash)
        row = Row(label=label, source="ours", seeds=len(by_seed))
        epochs = sorted({r["training"]["epochs_completed"] for r in by_seed.values()})
        row.epochs = "/".join(map(str, epochs))
        for record in by_seed.values():
            for metric in record["metrics"]:
                row.values.setdefault(metric["name"], []).append(metric["value"])
        tables[board].append(row)
    for entry in baselines:
        if wanted(entry["board"]):
            row = Row(
                label=entry.get("label", entry["model"]),
                source="published",
                values={entry["metric"]: [float(entry["value"])]},
                citation=entry.get("citation", ""),
                protocol=entry.get("protocol", ""),
            )
            tables[entry["board"]].append(row)
    for board, rows in tables.items():
        rows.sort(key=lambda r: (r.source != "ours", _sort_key(r)))
    return dict(sorted(tables.items()))


def _flat_config(record: dict) -> dict:
    train = {k: v for k, v in record["train_config"].items() if k not in ("seed", "eval_batch_size")}
    return {**record["model_config"], **train, **record.get("eval_settings", {})}


def _distinguishing_options(configs: dict[str, dict], chash: str, most: int = 4) -> str:
    """' [k=v, ...]' with the options in which this configuration differs from the model's
    other configurations on the board ('' when it has only one), so rows say what they are."""
    if len(configs) < 2:
        return ""
    mine = configs[chash]
    keys = [k for k in mine if any(other.get(k) != mine[k] for other in configs.values())]
    shown = ", ".join(f"{k}={mine[k]}" for k in keys[:most]) + (", ..." if len(keys) > most else "")
    return f" [{shown or chash[:6]}]"


def _sort_key(row: Row) -> float:
    for name, _, _ in COLUMNS:
        if name in row.values:
            return float(np.mean(row.values[name]))
    return math.inf


def _columns(rows: list[Row], all_metrics: bool) -> list[tuple[str, str, int]]:
    present = {name for row in rows for name in row.values}
    columns = [c for c in COLUMNS if c[0] in present]
    if all_metrics:
        known = {c[0] for c in COLUMNS}
        columns += [(name, name, 3) for name in sorted(present - known)]
    return columns


def _cell(values: list[float] | None, decimals: int, plus_minus: str) -> str:
    if not values:
        return ""
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f}{plus_minus}{float(np.std(values, ddof=1)):.{decimals}f}"


def render_markdown(tables: dict[str, list[Row]], all_metrics: bool = False) -> str:
    out = []
    for board, rows in tables.items():
        columns = _columns(rows, all_metrics)
        header = ["Model", "Source", "Seeds", "Epochs"] + [c[1] for c in columns]
        out.append(f"### {board}\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
        citations = []
        for row in rows:
            label = row.label
            if row.source == "published":
                citations.append(row)
                label += f" [{len(citations)}]"
            cells = [label, row.source, str(row.seeds or ""), row.epochs]
            cells += [_cell(row.values.get(name), dec, " ± ") for name, _, dec in columns]
            out.append("| " + " | ".join(cells) + " |")
        notes = [NOTES[name] for name, _, _ in columns if name in NOTES]
        out.append("")
        out.append("Ours: mean ± std over seeds. " + " ".join(notes))
        for i, row in enumerate(citations, 1):
            out.append(f"[{i}] {row.citation} Protocol: {row.protocol}")
        out.append("")
    return "\n".join(out) if out else "(no results)\n"


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(char, repl)
    return text


def render_latex(tables: dict[str, list[Row]], all_metrics: bool = False) -> str:
    """booktabs tables; published rows below a rule, marked with a dagger."""
    out = []
    for board, rows in tables.items():
        columns = _columns(rows, all_metrics)
        out.append(r"% requires \usepackage{booktabs}")
        out.append(r"\begin{table}[t]\centering")
        out.append(rf"\caption{{{_latex_escape(board)}: ours are mean $\pm$ std over seeds; $^\dagger$ published.}}")
        out.append(r"\begin{tabular}{l" + "r" * (1 + len(columns)) + "}")
        out.append(r"\toprule")
        out.append(" & ".join(["Model", "Seeds"] + [_latex_escape(c[1]) for c in columns]) + r" \\")
        out.append(r"\midrule")
        ours = [r for r in rows if r.source == "ours"]
        published = [r for r in rows if r.source == "published"]
        for group in (ours, published):
            if group is published and published and ours:
                out.append(r"\midrule")
            for row in group:
                label = _latex_escape(row.label) + (r"$^\dagger$" if row.source == "published" else "")
                cells = [label, str(row.seeds or "")]
                cells += [_cell(row.values.get(name), dec, r" $\pm$ ") for name, _, dec in columns]
                out.append(" & ".join(cells) + r" \\")
        out.append(r"\bottomrule")
        out.append(r"\end{tabular}")
        for row in published:
            out.append(f"% {_latex_escape(row.label)}: {_latex_escape(row.citation)}")
        out.append(r"\end{table}")
        out.append("")
    return "\n".join(out)
