"""The ``dgmbench`` command line.

    dgmbench run                          quick suite: every model on digits, then a leaderboard
    dgmbench run --model nade --dataset binarized_mnist --epochs 10 --seed 0
    dgmbench run --config configs/nade.toml
    dgmbench leaderboard [--dataset D] [--format markdown|latex]
    dgmbench models | datasets | metrics
    dgmbench human-study export|ingest ...
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import tomllib
from pathlib import Path

from dgmbench.registry import UnknownNameError

# The quick suite is a demonstration and smoke run: by default its records go to a local,
# git-ignored store, so that on a fresh clone it really trains every model instead of
# finding the committed quick-suite records in results/ ("already recorded"). Pass
# --results-dir results to record it there on purpose.
QUICK_RESULTS = ".dgmbench/quick-results"

# Modules that add their own subcommands through register_cli(subparsers).
SUBCOMMAND_MODULES = ("dgmbench.human_study",)


def parse_option(text: str) -> tuple[str, object]:
    """key=value with the value read as TOML (numbers, booleans, strings, lists)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, raw = text.split("=", 1)
    if raw == "none":
        return key.strip(), None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgmbench", description="Benchmark suite for deep generative models")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and evaluate a model (no arguments: the quick suite)")
    run.add_argument("--model", help="registered model name (see `dgmbench models`)")
    run.add_argument("--dataset", help="dataset or dataset/variant (see `dgmbench datasets`)")
    run.add_argument("--config", type=Path, help="TOML file with [run], [model], [train], [eval] tables")
    run.add_argument("--epochs", type=int)
    run.add_argument("--batch-size", type=int)
    run.add_argument("--lr", type=float)
    run.add_argument("--patience", type=int)
    run.add_argument("--seed", type=int, nargs="+", help="one or more seeds (one record each)")
    run.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default)")
    run.add_argument("-o", "--model-option", action="append", type=parse_option, default=[], metavar="KEY=VALUE")
    run.add_argument("-t", "--train-option", action="append", type=parse_option, default=[], metavar="KEY=VALUE")
    run.add_argument("-e", "--eval-option", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                     help="evaluation settings, e.g. iwae_k=5000, ais_chains=100")
    run.add_argument("--quick", action="store_true", help="use the model's quick-suite configuration")
    run.add_argument("--models", help="with no --model: comma-separated subset of the quick suite")
    run.add_argument("--results-dir", default=None,
                     help=f"results store (default: results; for the quick suite {QUICK_RESULTS})")
    run.add_argument("--workdir", default=".dgmbench", help="checkpoints and caches")
    run.add_argument("--force", action="store_true", help="record a repeat of an already recorded run")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=cmd_run)

    board = sub.add_parser("leaderboard", help="print leaderboards / paper tables")
    board.add_argument("--dataset", help="dataset name (all its boards) or an exact board name/variant")
    board.add_argument("--format", choices=("markdown", "latex"), default="markdown")
    board.add_argument("--results-dir", default="results")
    board.add_argument("--baselines-dir", type=Path, default=None)
    board.add_argument("--all-metrics", action="store_true")
    board.add_argument("--suite", choices=("all", "quick", "full"), default="all")
    board.add_argument("--output", type=Path, help="write to this file instead of stdout")
    board.set_defaults(func=cmd_leaderboard)

    for name, helptext in (("models", "list models"), ("datasets", "list datasets"), ("metrics", "list metrics")):
        p = sub.add_parser(name, help=helptext)
        p.set_defaults(func=cmd_list, what=name)

    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        module.register_cli(sub)
    return parser


def _spec_from_args(args, model: str, seed: int, config: dict):
    from dgmbench.runner import RunSpec

    run_table = config.get("run", {})
    train = dict(config.get("train", {}))
    for key in ("epochs", "batch_size", "lr", "patience"):
        value = getattr(args, key)
        if value is not None:
            train[key] = value
    train.update(dict(args.train_option))
    return RunSpec(
        model=model,
        dataset=args.dataset or run_table.get("dataset"),
        model_options={**config.get("model", {}), **dict(args.model_option)},
        train_options=train,
        eval_options={**config.get("eval", {}), **dict(args.eval_option)},
        seed=seed,
        device=args.device or run_table.get("device", "auto"),
        quick=args.quick or run_table.get("quick", False),
        results_dir=args.results_dir,
        workdir=args.workdir,
        force=args.force,
        progress=not args.no_progress,
    )


def cmd_run(args) -> int:
    from dgmbench.runner import run

    config = {}
    if args.config:
        with open(args.config, "rb") as handle:
            config = tomllib.load(handle)
    run_table = config.get("run", {})
    model = args.model or run_table.get("model")
    seeds = args.seed or [run_table.get("seed", 0)]
    if model is None:
        args.results_dir = args.results_dir or QUICK_RESULTS
        return run_quick_suite(args, seeds)
    args.results_dir = args.results_dir or "results"
    for seed in seeds:
        run(_spec_from_args(args, model, seed, config))
    return 0


def run_quick_suite(args, seeds) -> int:
    """Every quick-suite model on the embedded digits data, then the digits leaderboard."""
    from dgmbench.runner import quick_suite_models, run

    names = quick_suite_models()
    if args.models:
        wanted = args.models.split(",")
        from dgmbench.models.base import MODELS

        for name in wanted:
            MODELS.get(name)  # unknown names fail with the list of valid ones
        names = [n for n in names if n in wanted]
    args.quick = True
    tic = time.perf_counter()
    timings = []
    for name in names:
        for seed in seeds:
            start = time.perf_counter()
            run(_spec_from_args(args, name, seed, {}), log=lambda msg: print(msg, flush=True))
            timings.append((name, time.perf_counter() - start))
    print(f"\nquick suite: {len(timings)} runs in {time.perf_counter() - tic:.0f} s; records in {args.results_dir}")
    for name, seconds in timings:
        print(f"  {name:24s} {seconds:6.1f} s")
    print()
    return cmd_leaderboard(argparse.Namespace(
        dataset="digits", format="markdown", results_dir=args.results_dir, baselines_dir=None,
        all_metrics=False, suite="quick", output=None))


def cmd_leaderboard(args) -> int:
    from dgmbench.report import build_tables, load_baselines, render_latex, render_markdown
    from dgmbench.results import ResultsStore

    records = ResultsStore(Path(args.results_dir)).load()
    if args.suite == "quick":
        records = [r for r in records if r.get("suite") == "quick"]
    elif args.suite == "full":
        records = [r for r in records if r.get("suite") != "quick"]
    tables = build_tables(records, load_baselines(args.baselines_dir), args.dataset)
    if args.dataset and not tables:
        from dgmbench.data.base import DATASETS

        name = args.dataset.split("/")[0]
        DATASETS.get(name)  # an unknown dataset fails with the list of valid ones
    render = render_latex if args.format == "latex" else render_markdown
    text = render(tables, all_metrics=args.all_metrics)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_list(args) -> int:
    if args.what == "models":
        from dgmbench.models.base import MODELS, EnergyBased, ExactLikelihood, Implicit, LowerBound

        for name, cls in MODELS.items():
            caps = [c for c, base in (("exact", ExactLikelihood), ("bound", LowerBound),
                                      ("energy", EnergyBased), ("implicit", Implicit)) if issubclass(cls, base)]
            print(f"{name:22s} {cls.family:15s} {','.join(caps):12s} {'/'.join(cls.value_types):28s} {cls.citation}")
    elif args.what == "datasets":
        from dgmbench.data.base import DATASETS

        for name, spec in DATASETS.items():
            print(f"{name:18s} {', '.join(spec.variants):34s} {spec.description}")
    else:
        from dgmbench.metrics.base import METRICS

        for name in METRICS.names():
            print(name)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UnknownNameError, ValueError, FileNotFoundError) as err:
        print(f"dgmbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgmbench: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except RuntimeError as err:  # NonFiniteLossError and friends: say what happened, keep checkpoints
        print(f"dgmbench: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
