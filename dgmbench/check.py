"""``dgmbench check``: rerun the quick suite (or a sweep) and compare every metric with the
committed record of the same run key; exit code 1 when a metric got worse beyond tolerance.

A run key hashes everything that determines a result (model, board, configs, seed,
evaluation settings), so a committed record with the same key is the same experiment at an
earlier commit: any difference comes from the code (or the machine's arithmetic).

Tolerance of one metric, old value a (committed) and new value b:

    tol = max( z * sqrt(se_a^2 + se_b^2),      the metric's own standard errors (test-set or
                                               sample noise), when the records carry them
               z * sd_seeds,                   the spread of the committed values over seeds of
                                               the same configuration, when there are >= 2
               rtol * |a| )                    a floor for metrics recorded without any
                                               uncertainty (e.g. FID, a score) and for
                                               arithmetic differences between machines

A change beyond tol in the worse direction (higher NLL, lower IS, ...) is a regression; one
in the better direction is reported as a change and does not fail the check. Runs with no
committed record are listed as new.

Another CPU. Training is deterministic on one machine but not across CPUs: a different CPU
model (``device.cpu`` in the record) runs other matrix kernels, and the tiny rounding
differences grow along a training trajectory. Measured on the quick suite: every likelihood
and bound stayed within tolerance between an AMD EPYC and an Intel Xeon, but single-seed
sample metrics of adversarial and other sample-trained models moved by up to 30% (AAE FID
89 -> 119; the same code, commit b2828b9). A single seed says nothing about that spread, so
when the committed record was made on another CPU, a worse-than-tolerance change is listed
as ``other cpu`` and does not fail the check; missing and non-finite metrics still fail.
For a strict check on a new machine, record the baselines there first
(``dgmbench run --results-dir base`` at the base commit, then ``dgmbench check --against base``).
"""
from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dgmbench.validation import ConfigError

DEFAULT_Z = 3.0
DEFAULT_RTOL = 0.05


@dataclass
class Comparison:
    run: str  # model seed board
    metric: str
    old: float | None
    new: float | None
    tolerance: float | None
    verdict: str  # "ok" | "regression" | "improved" | "other cpu" | "new" | "missing" | "not finite"

    def line(self) -> str:
        if self.verdict in ("new", "missing"):
            return f"{self.verdict:>10}  {self.run}  {self.metric}"
        delta = (self.new - self.old) if self.old is not None and self.new is not None else float("nan")
        return (f"{self.verdict:>10}  {self.run}  {self.metric}: {self.old:.6g} -> {self.new:.6g} "
                f"(change {delta:+.4g}, tolerance {self.tolerance:.3g})")


def _by_key(records: list[dict]) -> dict[str, dict]:
    return {r["run_key"]: r for r in records}


def _seed_spread(records: list[dict], group: str, metric: str) -> float | None:
    values = [m["value"] for r in records if r.get("config_hash") == group
              for m in r["metrics"] if m["name"] == metric and m["value"] is not None]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _cpu(record: dict) -> str | None:
    return (record.get("device") or {}).get("cpu")


def compare(new_records: list[dict], committed: list[dict], z: float = DEFAULT_Z,
            rtol: float = DEFAULT_RTOL) -> list[Comparison]:
    """One Comparison per (run, metric) of the new records."""
    old_by_key = _by_key(committed)
    out = []
    for record in new_records:
        run = f"{record['model']} seed {record['seed']} on {record['board']} ({record['run_key'][:12]})"
        old_record = old_by_key.get(record["run_key"])
        if old_record is None:
            out.append(Comparison(run, "(all metrics)", None, None, None, "new"))
            continue
        old_metrics = {m["name"]: m for m in old_record["metrics"]}
        new_metrics = {m["name"]: m for m in record["metrics"]}
        for name in sorted(set(old_metrics) - set(new_metrics)):
            out.append(Comparison(run, name, None, None, None, "missing"))
        for name, new in sorted(new_metrics.items()):
            old = old_metrics.get(name)
            if old is None:
                out.append(Comparison(run, name, None, new["value"], None, "new"))
                continue
            a, b = old["value"], new["value"]
            if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
                verdict = "ok" if a == b else "not finite"
                out.append(Comparison(run, name, a, b, 0.0, verdict))
                continue
            parts = [rtol * abs(a)]
            if old.get("stderr") is not None or new.get("stderr") is not None:
                parts.append(z * math.hypot(old.get("stderr") or 0.0, new.get("stderr") or 0.0))
            spread = _seed_spread(committed, old_record.get("config_hash"), name)
            if spread is not None:
                parts.append(z * spread)
            tol = max(parts)
            worse = (b - a) if not new.get("higher_is_better") else (a - b)
            verdict = "regression" if worse > tol else "improved" if -worse > tol else "ok"
            if verdict == "regression" and _cpu(old_record) != _cpu(record):
                verdict = "other cpu"  # not attributable to the code (module docstring)
            out.append(Comparison(run, name, a, b, tol, verdict))
    return out


def _rerun(args) -> list[dict]:
    """Rerun the quick suite (or the sweep file) into a scratch store; its records."""
    from dgmbench.results import ResultsStore
    from dgmbench.runner import RunSpec, quick_suite_models, validate
    from dgmbench.sweep import expand, read_sweep, run_sweep

    scratch = Path(tempfile.mkdtemp(prefix="dgmbench-check-"))
    try:
        if args.sweep:
            specs = expand(read_sweep(args.sweep), str(scratch / "results"), str(scratch / "work"))
        else:
            names = quick_suite_models()
            if args.models:
                wanted = args.models.split(",")
                unknown = sorted(set(wanted) - set(names))
                if unknown:
                    raise ConfigError(f"--models: {', '.join(unknown)} not in the quick suite; "
                                      f"quick-suite models: {', '.join(names)}")
                names = [n for n in names if n in wanted]
            specs = [RunSpec(model=n, quick=True, seed=s, device="cpu", results_dir=str(scratch / "results"),
                             workdir=str(scratch / "work"), progress=False) for n in names for s in args.seed]
            for spec in specs:
                validate(spec)
        counts = run_sweep(specs, scratch / "results", use_ray=False, address=None, cpus_per_run=args.threads,
                           progress=not args.no_progress)
        if counts["failed"]:
            raise ConfigError(f"check: {counts['failed']} run(s) failed (see above); fix them before comparing")
        return ResultsStore(scratch / "results").load()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_check(args) -> int:
    from dgmbench.results import ResultsStore

    against = Path(args.against)
    if not (against / "records").is_dir():
        raise ConfigError(f"--against {against}: no records/ folder there; give a results directory "
                          "holding committed records (default: results)")
    committed = ResultsStore(against).load()
    comparisons = compare(_rerun(args), committed, args.z, args.rtol)
    shown = [c for c in comparisons if args.verbose or c.verdict != "ok"]
    for c in shown:
        print(c.line())
    regressions = [c for c in comparisons if c.verdict in ("regression", "not finite", "missing")]
    ok = sum(c.verdict == "ok" for c in comparisons)
    new = sum(c.verdict == "new" for c in comparisons)
    other_cpu = sum(c.verdict == "other cpu" for c in comparisons)
    print(f"check: {ok} metrics within tolerance, {len(regressions)} regressions, "
          f"{sum(c.verdict == 'improved' for c in comparisons)} improved, {new} without a committed record "
          f"(z={args.z}, rtol={args.rtol}, against {against})")
    if other_cpu:
        print(f"check: {other_cpu} metrics worse beyond tolerance against records made on another CPU "
              "(listed as 'other cpu', not failed: training is not bit-reproducible across CPUs); "
              "for a strict check, record the baselines on this machine and use --against")
    return 1 if regressions else 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="rerun the quick suite and fail on a metric that got worse",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated subset of the quick suite")
    p.add_argument("--sweep", type=Path, help="check the runs of this sweep file instead of the quick suite")
    p.add_argument("--seed", type=int, nargs="+", default=[0])
    p.add_argument("--against", default="results", help="results directory with the committed records")
    p.add_argument("--z", type=float, default=DEFAULT_Z, help="tolerance in standard errors / seed sds")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                   help="relative tolerance floor, the only one for metrics recorded without uncertainty")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each rerun")
    p.add_argument("--verbose", action="store_true", help="list every metric, not only the changed ones")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_check)
