"""``dgmbench reproduce``: rerun a published result at the paper's protocol.

    dgmbench reproduce                      every reproduction: estimated CPU/GPU hours, status
    dgmbench reproduce fvsbn_lm2011         train and evaluate it through the normal runner
    dgmbench reproduce made_2x8000_32masks --device cuda

A reproduction is data: a ``[result.reproduce]`` table under a published ``[[result]]`` in
``baselines/*.toml`` (schema in baselines/README.md) names our model and its ``-o``/``-t``/
``-e`` options, the stopping rule, the paper's table and page, the estimated CPU and GPU
hours and the ``tolerance`` (nats) within which the published number counts as reproduced.

A reproduction runs as an ordinary :func:`dgmbench.runner.run` with ``RunSpec.reproduces``
set: its run key includes the reproduction's name (and, as for every run, every model,
training and evaluation option), so rerunning the same command after an interruption
resumes from the last checkpoint and rerunning it after it finished reports the record.
The record carries ``reproduces`` (the name and the published value, metric, citation).

Status of a reproduction, from the results store and the run directories:

* ``reproduced``: a record whose metric is within ``tolerance`` of the published value;
* ``gap explained``: a record outside the tolerance, with an ``explanation`` (in the
  reproduce table, or in the record) saying why, with a measurement;
* ``gap unexplained``: a record outside the tolerance and no explanation;
* ``running or interrupted``: no record yet, but an interim record (a run paused by
  ``--stop-after-hours``: its metric so far, epochs done, learning curve and the command that
  continues it) or a run directory with checkpoints (rerun the command to continue it);
* ``not run``.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from dgmbench.validation import ConfigError

REPRODUCE_KEYS = {
    "name": "the NAME of `dgmbench reproduce NAME` (unique over baselines/)",
    "model": "our registry name",
    "board": "dataset/variant the run trains and evaluates on",
    "model_options": "-o options (the paper's architecture)",
    "train_options": "-t options (epochs, batch_size, lr, patience, ...)",
    "eval_options": "-e settings (estimator, k, AIS schedule, metrics)",
    "metric": "the metric of the record compared with the published value (default: the result's metric)",
    "stopping": "the stopping rule, in words",
    "source": "the paper's table and page the published value is in",
    "protocol_differences": "where our run differs from the paper's protocol, and why",
    "cpu_hours": "estimated CPU hours (2 cores)",
    "gpu_hours": "estimated GPU hours (one GPU)",
    "estimate": "how the hours were estimated (measured step time x steps)",
    "gpu_only": "true: not feasible on a CPU in a working day",
    "tolerance": "nats (or the metric's unit) within which the published value counts as reproduced",
    "explanation": "why a recorded run's gap is larger than the tolerance (a measurement)",
}
REQUIRED = ("name", "model", "train_options", "source", "cpu_hours", "gpu_hours", "estimate", "tolerance")


@dataclass
class Reproduction:
    name: str
    model: str
    board: str
    metric: str
    published: float
    unit: str
    label: str
    citation: str
    file: str
    source: str
    tolerance: float
    cpu_hours: float
    gpu_hours: float
    estimate: str
    gpu_only: bool = False
    stopping: str = ""
    protocol_differences: str = ""
    explanation: str = ""
    model_options: dict = field(default_factory=dict)
    train_options: dict = field(default_factory=dict)
    eval_options: dict = field(default_factory=dict)

    def link(self) -> dict:
        """What a record says about the published result it reproduces."""
        return {"name": self.name, "label": self.label, "board": self.board, "metric": self.metric,
                "published": self.published, "unit": self.unit, "tolerance": self.tolerance,
                "citation": self.citation, "source": self.source, "baselines_file": self.file}

    def spec(self, device: str = "auto", results_dir: str = "results", workdir: str = ".dgmbench",
             progress: bool = True, stop_after_hours: float | None = None):
        from dgmbench.runner import RunSpec

        return RunSpec(model=self.model, dataset=self.board, model_options=dict(self.model_options),
                       train_options=dict(self.train_options), eval_options=dict(self.eval_options),
                       device=device, results_dir=results_dir, workdir=workdir, progress=progress,
                       reproduces=self.link(), stop_after_hours=stop_after_hours)


def load_reproductions(directory: str | Path | None = None) -> dict[str, Reproduction]:
    """name -> Reproduction, from every ``[result.reproduce]`` table in baselines/*.toml."""
    from dgmbench.results_frame import baseline_entries

    found: dict[str, Reproduction] = {}
    for path, entry in baseline_entries(directory):
        table = entry.get("reproduce")
        if table is None:
            continue
        where = f"{path.name}, result {entry.get('label', '?')!r}"
        unknown = sorted(set(table) - set(REPRODUCE_KEYS))
        missing = [k for k in REQUIRED if k not in table]
        if unknown or missing:
            what = f"unknown key {unknown[0]!r}" if unknown else f"missing key {missing[0]!r}"
            raise ConfigError(f"{where}: [result.reproduce] has {what}; keys: {', '.join(REPRODUCE_KEYS)}")
        name = table["name"]
        if name in found:
            raise ConfigError(f"{where}: reproduction name {name!r} is also used in {found[name].file}")
        found[name] = Reproduction(
            name=name, model=table["model"], board=table.get("board", entry["board"]),
            metric=table.get("metric", entry["metric"]), published=float(entry["value"]),
            unit=entry.get("unit", ""), label=entry.get("label", name), citation=entry.get("citation", ""),
            file=path.name, source=table["source"], tolerance=float(table["tolerance"]),
            cpu_hours=float(table["cpu_hours"]), gpu_hours=float(table["gpu_hours"]), estimate=table["estimate"],
            gpu_only=bool(table.get("gpu_only", False)), stopping=table.get("stopping", ""),
            protocol_differences=table.get("protocol_differences", ""),
            explanation=table.get("explanation", ""), model_options=dict(table.get("model_options", {})),
            train_options=dict(table.get("train_options", {})), eval_options=dict(table.get("eval_options", {})),
        )
    return found


def get(name: str, reproductions: dict[str, Reproduction]) -> Reproduction:
    if name not in reproductions:
        raise ConfigError(f"no reproduction named {name!r}; valid names: {', '.join(sorted(reproductions))}")
    return reproductions[name]


# --------------------------------------------------------------------------- status
@dataclass
class Status:
    name: str
    status: str  # reproduced | gap explained | gap unexplained | running or interrupted | not run
    ours: float | None = None
    stderr: float | None = None  # of ours (test-set se, combined with the seed spread)
    gap: float | None = None  # ours - published
    epochs: int | None = None
    wall_hours: float | None = None
    records: list[str] = field(default_factory=list)
    explanation: str = ""
    detail: str = ""


def record_metric(record: dict, metric: str) -> tuple[float | None, float | None]:
    for entry in record.get("metrics", []):
        if entry.get("name") == metric and entry.get("value") is not None:
            stderr = entry.get("stderr")
            return float(entry["value"]), (float(stderr) if stderr is not None else None)
    return None, None


def combined(values: list[float], stderrs: list[float | None]) -> tuple[float, float | None]:
    """Mean over seeds and its standard error. The seeds share one test set, so its sampling
    error does not average out over seeds: se^2 = mean(test-set se^2) + var(seeds) / n."""
    n = len(values)
    mean = sum(values) / n
    known = [s for s in stderrs if s is not None and math.isfinite(s)]
    test_var = sum(s * s for s in known) / len(known) if known else None
    seed_var = sum((v - mean) ** 2 for v in values) / (n - 1) / n if n > 1 else 0.0
    if test_var is None:
        return mean, (math.sqrt(seed_var) if n > 1 else None)
    return mean, math.sqrt(test_var + seed_var)


def reproduction_records(results_dir: str | Path) -> dict[str, list[dict]]:
    """name -> the records of the store that reproduce it (latest per seed)."""
    from dgmbench.results import ResultsStore

    by_name: dict[str, dict[tuple, dict]] = {}
    for record in ResultsStore(Path(results_dir)).load():
        link = record.get("reproduces")
        if not isinstance(link, dict) or "name" not in link:
            continue
        key = (record.get("run_key"), record.get("seed"))
        slot = by_name.setdefault(link["name"], {})
        if key not in slot or str(record.get("created", "")) > str(slot[key].get("created", "")):
            slot[key] = record
    return {name: list(slot.values()) for name, slot in by_name.items()}


def interim_records(results_dir: str | Path) -> dict[str, list[dict]]:
    """name -> the interim records (paused runs) of the store that reproduce it."""
    from dgmbench.results import ResultsStore

    by_name: dict[str, list[dict]] = {}
    for record in ResultsStore(Path(results_dir)).load_interim():
        link = record.get("reproduces")
        if isinstance(link, dict) and "name" in link:
            by_name.setdefault(link["name"], []).append(record)
    return by_name


def _run_in_progress(repro: Reproduction, workdir: str | Path) -> tuple[str, int | None] | None:
    """(run directory, epochs done) of a started, unrecorded run of this reproduction."""
    runs = Path(workdir) / "runs"
    for run_dir in sorted(runs.glob(f"{repro.model}__{repro.board.replace('/', '__')}__*")):
        try:
            meta = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            continue
        identity = meta.get("identity", {})
        if identity.get("reproduces") != repro.name or not _same_options(repro, identity):
            continue  # another reproduction, or this one under options since changed in baselines/
        epoch = None
        try:
            import torch

            from dgmbench.train.trainer import LAST

            if (run_dir / LAST).exists():
                epoch = int(torch.load(run_dir / LAST, map_location="cpu", weights_only=False)["epoch"])
        except Exception:  # an unreadable or half-written checkpoint: still a started run
            epoch = None
        return str(run_dir), epoch
    return None


def _same_options(repro: Reproduction, identity: dict) -> bool:
    model_config, train_config = identity.get("model_config", {}), identity.get("train_config", {})
    same = all(_equal(model_config.get(k), v) for k, v in repro.model_options.items())
    same &= all(_equal(train_config.get(k), v) for k, v in repro.train_options.items())
    return same and identity.get("eval_settings", {}) == repro.eval_options


def _equal(a, b) -> bool:
    return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b


def status_of(repro: Reproduction, records: list[dict], workdir: str | Path = ".dgmbench",
              interim: list[dict] = ()) -> Status:
    # A record made under an earlier protocol of this reproduction (options since changed in
    # baselines/) does not reproduce the current one: it stays in results/, but not here.
    records = [r for r in records if _same_options(repro, r)]
    interim = [r for r in interim if _same_options(repro, r)]
    scored = [(r, *record_metric(r, repro.metric)) for r in records if not r.get("interim")]
    scored = [(r, v, s) for r, v, s in scored if v is not None]
    paused = [(r, *record_metric(r, repro.metric)) for r in [*interim, *(r for r in records if r.get("interim"))]]
    paused = [(r, v, s) for r, v, s in paused if v is not None]
    if not scored and paused:
        record, value, stderr = max(paused, key=lambda item: str(item[0].get("created", "")))
        state = record["interim"]
        training = record.get("training") or {}
        selected = ("best-validation checkpoint so far" if any(
            h.get("valid") is not None and math.isfinite(h["valid"]) for h in training.get("history") or []
        ) else "last checkpoint")
        detail = (f"interim record: epoch {state['epochs_completed']} of {state['planned_epochs']} "
                  f"({selected}); {curve_note(training)}; continue with: {state['continue']}")
        return Status(repro.name, "running or interrupted", ours=value, stderr=stderr, gap=value - repro.published,
                      epochs=int(state["epochs_completed"]),
                      wall_hours=float(record.get("wall_seconds") or 0.0) / 3600,
                      records=[Path(record.get("_path", "")).stem], explanation=repro.explanation, detail=detail)
    if not scored:
        started = _run_in_progress(repro, workdir)
        if started is None:
            return Status(repro.name, "not run")
        run_dir, epoch = started
        done = f"epoch {epoch} of {repro.train_options.get('epochs', '?')}" if epoch is not None else "no checkpoint yet"
        return Status(repro.name, "running or interrupted", epochs=epoch, detail=f"{run_dir} ({done})")
    ours, stderr = combined([v for _, v, _ in scored], [s for _, _, s in scored])
    gap = ours - repro.published
    explanation = repro.explanation or next((r.get("explanation") for r, _, _ in scored if r.get("explanation")), "")
    if abs(gap) <= repro.tolerance:
        state = "reproduced"
    else:
        state = "gap explained" if explanation else "gap unexplained"
    training = [r.get("training") or {} for r, _, _ in scored]
    epochs = max(int(t.get("epochs_completed") or 0) for t in training)
    wall = max(float(r.get("wall_seconds") or 0.0) for r, _, _ in scored) / 3600
    names = [Path(r.get("_path", "")).stem for r, _, _ in scored]
    return Status(repro.name, state, ours=ours, stderr=stderr, gap=gap, epochs=epochs, wall_hours=wall,
                  records=names, explanation=explanation, detail=curve_note(training[0]))


def curve_note(training: dict, window: int = 5) -> str:
    """A measurement for a gap: whether training stopped early (validation converged) or ran
    into its epoch limit while the validation score was still falling."""
    history = training.get("history") or []
    valid = [h["valid"] for h in history if h.get("valid") is not None and math.isfinite(h["valid"])]
    if not valid:  # e.g. a GAN: no validation loss to select on, the last checkpoint is kept
        return f"ran {len(history)} epochs (no validation score; the last checkpoint is evaluated)" if history else ""
    if training.get("stopped_early"):
        return f"early-stopped: best validation {min(valid):.2f} at epoch {training.get('best_epoch')} of {len(valid)}"
    if len(valid) > window and valid[-1] < valid[-1 - window]:
        rate = (valid[-1 - window] - valid[-1]) / window
        return (f"stopped at the epoch limit with the validation score still falling by {rate:.3g} per epoch "
                f"({valid[-1 - window]:.2f} -> {valid[-1]:.2f} over the last {window} epochs)")
    return f"ran {len(valid)} epochs; best validation {min(valid):.2f}"


def statuses(reproductions: dict[str, Reproduction], results_dir: str | Path = "results",
             workdir: str | Path = ".dgmbench") -> dict[str, Status]:
    records = reproduction_records(results_dir) if Path(results_dir).is_dir() else {}
    paused = interim_records(results_dir) if Path(results_dir).is_dir() else {}
    return {name: status_of(repro, records.get(name, []), workdir, paused.get(name, []))
            for name, repro in reproductions.items()}


def gap_text(status: Status, digits: int = 2) -> str:
    if status.gap is None:
        return ""
    text = f"{status.gap:+.{digits}f}"
    return text + (f" ± {status.stderr:.{digits}f}" if status.stderr is not None else "")


def listing(reproductions: dict[str, Reproduction], found: dict[str, Status]) -> str:
    """The table `dgmbench reproduce` prints."""
    lines = [f"{'name':30s} {'model':17s} {'board':22s} {'published':>10s} {'CPU h':>7s} {'GPU h':>6s}  "
             f"{'status':32s} {'ours':>8s} {'gap ± se':>14s}"]
    for name in sorted(reproductions, key=lambda n: (reproductions[n].gpu_only, reproductions[n].cpu_hours, n)):
        repro, state = reproductions[name], found[name]
        cpu = f"{repro.cpu_hours:.1f}" + ("*" if repro.gpu_only else "")
        ours = f"{state.ours:.2f}" if state.ours is not None else ""
        text = state.status
        if state.status == "running or interrupted" and state.epochs is not None:
            text += f" ({state.epochs}/{repro.train_options.get('epochs', '?')})"
        lines.append(f"{name:30s} {repro.model:17s} {repro.board:22s} {repro.published:10.2f} {cpu:>7s} "
                     f"{repro.gpu_hours:6.2f}  {text:32s} {ours:>8s} {gap_text(state):>14s}")
    lines.append("* GPU-only: run with `dgmbench reproduce NAME --device cuda` on a machine with a GPU. "
                 "Hours are estimates (see each reproduction's `estimate` in baselines/); "
                 "`dgmbench reproduce NAME --show` prints its protocol.")
    return "\n".join(lines)


def describe(repro: Reproduction) -> str:
    from dgmbench.runner import _toml_value

    def options(flag, values):
        return " ".join(f"{flag} {k}={_toml_value(v)}" for k, v in sorted(values.items())) or "(defaults)"

    rows = [
        ("reproduces", f"{repro.label}: {repro.metric} = {repro.published} {repro.unit} ({repro.source})"),
        ("citation", repro.citation),
        ("run", f"--model {repro.model} --dataset {repro.board}"),
        ("model options", options("-o", repro.model_options)),
        ("training options", options("-t", repro.train_options)),
        ("evaluation", options("-e", repro.eval_options)),
        ("stopping rule", repro.stopping),
        ("differences", repro.protocol_differences),
        ("estimated time", f"{repro.cpu_hours} CPU h, {repro.gpu_hours} GPU h"
                           + (" (GPU only)" if repro.gpu_only else "") + f": {repro.estimate}"),
        ("tolerance", f"{repro.tolerance} {repro.unit}"),
        ("explanation", repro.explanation),
    ]
    return "\n".join(f"{key:17s} {value}" for key, value in rows if value)


# --------------------------------------------------------------------------- command line
def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="list the reproductions of published results, or run one",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help="the reproduction to run (no name: list them all)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--workdir", default=".dgmbench", help="checkpoints (a rerun resumes from them)")
    p.add_argument("--baselines-dir", type=Path, default=None)
    p.add_argument("--show", action="store_true", help="print the reproduction's protocol instead of running it")
    p.add_argument("--stop-after-hours", type=float, default=None, metavar="H",
                   help="pause at the last epoch boundary before H hours (checkpoint kept, interim record with the "
                        "learning curve written); the same command continues the run")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args) -> int:
    reproductions = load_reproductions(args.baselines_dir)
    if args.name is None:
        print(listing(reproductions, statuses(reproductions, args.results_dir, args.workdir)))
        return 0
    repro = get(args.name, reproductions)
    if args.show:
        print(describe(repro))
        return 0
    from dgmbench.runner import run, validate

    spec = repro.spec(device=args.device, results_dir=args.results_dir, workdir=args.workdir,
                      progress=not args.no_progress, stop_after_hours=args.stop_after_hours)
    validate(spec)
    print(f"reproducing {repro.label}: {repro.metric} {repro.published} {repro.unit} ({repro.source})", flush=True)
    record = run(spec, log=lambda message: print(message, flush=True))
    if record and record.get("interim"):
        state = status_of(repro, [], args.workdir, interim=[record])
        print(f"{repro.name}: paused; {state.detail}")
        return 0
    state = status_of(repro, [record] if record else [], args.workdir)
    if state.ours is not None:
        print(f"{repro.name}: ours {state.ours:.2f} vs published {repro.published:.2f}, gap {gap_text(state)} "
              f"{repro.unit} (tolerance {repro.tolerance}): {state.status}")
    return 0
