"""The ``dgmbench`` command line.

    dgmbench run                          quick suite: every model on digits, then a leaderboard
    dgmbench run --model nade --dataset binarized_mnist --epochs 10 --seed 0
    dgmbench run --config configs/nade.toml
    dgmbench leaderboard [--dataset D] [--metrics nll,fid] [--format markdown|latex|html|csv]
    dgmbench plot --dataset digits/binary
    dgmbench models | datasets | metrics
    dgmbench human-study export|ingest ...
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from dgmbench.registry import UnknownNameError

# Before anything imports torch (which loads OpenMP): idle OpenMP threads sleep instead of
# spinning, which on a shared or loaded machine made small training steps 40-53x slower at
# two threads (issue 9). Subprocesses inherit it; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The quick suite is a demonstration and smoke run: by default its records go to a local,
# git-ignored store, so that on a fresh clone it really trains every model instead of
# finding the committed quick-suite records in results/ ("already recorded"). Pass
# --results-dir results to record it there on purpose.
QUICK_RESULTS = ".dgmbench/quick-results"

# Modules that add their own subcommands through register_cli(subparsers).
SUBCOMMAND_MODULES = ("dgmbench.human_study", "dgmbench.sweep", "dgmbench.check", "dgmbench.reproduce")


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


class OneLineErrorParser(argparse.ArgumentParser):
    """Command-line mistakes are one line on stderr (and exit status 2), pointing at --help
    instead of printing the whole usage. Subcommand parsers inherit this class."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="dgmbench", description="Benchmark suite for deep generative models")
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
    run.add_argument("--resume-from", metavar="RUN",
                     help="continue training from this run's last good checkpoint (a run directory under "
                          "<workdir>/runs, or its run key) with the training options given here, e.g. a lower lr")
    run.add_argument("--reuse-training", metavar="RUN",
                     help="evaluate again, under the -e settings given here, a finished run trained with the same "
                          "model, dataset, options and seed (its directory or run key), instead of training again")
    run.add_argument("--stop-after-hours", type=float, default=None, metavar="H",
                     help="pause each run at the last epoch boundary before H hours of this invocation (checkpoint "
                          "kept, interim record written); the same command continues it. Not part of the protocol")
    run.add_argument("--nproc", type=int, default=None, metavar="N",
                     help="data-parallel training on N processes (one per GPU; gloo on CPU) under torchrun")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=cmd_run)

    board = sub.add_parser("leaderboard", help="print leaderboards / paper tables")
    board.add_argument("--dataset", help="dataset name (all its boards) or an exact board name/variant")
    board.add_argument("--format", choices=("markdown", "latex", "html", "csv"), default="markdown")
    board.add_argument("--metrics", help="comma-separated columns, e.g. nll,fid (default: each family's headline metrics)")
    board.add_argument("--models", help="comma-separated models (ours and published rows)")
    board.add_argument("--results-dir", default="results")
    board.add_argument("--baselines-dir", type=Path, default=None)
    board.add_argument("--all-metrics", action="store_true")
    board.add_argument("--suite", choices=("all", "quick", "full"), default="all")
    board.add_argument("--output", type=Path,
                       help="write to this file instead of stdout (--format html: a folder, one page per board)")
    board.add_argument("--reproductions", action="store_true",
                       help="list every reproduction of a published result (`dgmbench reproduce`) with its status")
    board.set_defaults(func=cmd_leaderboard)

    plot = sub.add_parser("plot", help="NLL against wall-clock time and the models' samples side by side, for one board")
    plot.add_argument("--dataset", required=True, help="board (dataset/variant) or a dataset with one board")
    plot.add_argument("--metric", help="the y axis (default: nll, else the board's headline metric)")
    plot.add_argument("--results-dir", default="results")
    plot.add_argument("--suite", choices=("all", "quick", "full"), default="all")
    plot.add_argument("--output", type=Path, default=Path("results/plots"), help="folder for the PNG files")
    plot.set_defaults(func=cmd_plot)

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
        resume_from=args.resume_from or run_table.get("resume_from"),
        reuse_training=args.reuse_training or run_table.get("reuse_training"),
        stop_after_hours=args.stop_after_hours,
    )


CONFIG_TABLES = {"run": {"model", "dataset", "seed", "device", "quick", "resume_from", "reuse_training"},
                 "model": None, "train": None, "eval": None}  # None: keys checked against the Config


def read_config(path: Path) -> dict:
    """A --config TOML file; a syntax error names the file and the line, an unknown table or
    [run] key names the valid ones."""
    from dgmbench.validation import ConfigError, read_toml_file

    config = read_toml_file(path, f"--config {path}")
    for table, value in config.items():
        if table not in CONFIG_TABLES or not isinstance(value, dict):
            raise ConfigError(f"--config {path}: unknown table or key {table!r}; valid tables: "
                              + ", ".join(f"[{t}]" for t in CONFIG_TABLES))
        unknown = sorted(set(value) - CONFIG_TABLES[table]) if CONFIG_TABLES[table] else []
        if unknown:
            raise ConfigError(f"--config {path}: [{table}] has no key {unknown[0]!r}; valid keys: "
                              + ", ".join(sorted(CONFIG_TABLES[table])))
    return config


def cmd_run(args) -> int:
    from dgmbench.runner import run, validate
    from dgmbench.train import distributed

    config = read_config(args.config) if args.config else {}
    run_table = config.get("run", {})
    model = args.model or run_table.get("model")
    seeds = args.seed or [run_table.get("seed", 0)]
    if model is None:
        args.results_dir = args.results_dir or QUICK_RESULTS
        return run_quick_suite(args, seeds)
    args.results_dir = args.results_dir or "results"
    specs = [_spec_from_args(args, model, seed, config) for seed in seeds]
    for spec in specs:  # every seed's options are checked before the first one trains
        validate(spec)
    if args.nproc is not None or distributed.launched_by_torchrun():
        from dgmbench.models.base import MODELS

        distributed.check_supported(MODELS.get(model))
        if not distributed.launched_by_torchrun():
            return _relaunch_under_torchrun(args.nproc)
        device = distributed.init_from_env(specs[0].device)
        specs = [dataclasses.replace(spec, device=device, progress=spec.progress and distributed.is_main())
                 for spec in specs]
    for spec in specs:
        run(spec, log=print if distributed.is_main() else (lambda *a, **k: None))
    return 0


def _relaunch_under_torchrun(nproc: int) -> int:
    """Run this same command under torchrun with `nproc` processes on this machine."""
    if nproc < 1:
        raise ValueError(f"--nproc {nproc}: give a number of processes >= 1")
    argv, skip = [], False
    for word in sys.argv[1:]:  # this command line without --nproc N
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            argv.append(word)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "dgmbench.cli", *argv]
    return subprocess.call(command)


def run_quick_suite(args, seeds) -> int:
    """Every quick-suite model on the embedded digits data, then the digits leaderboard."""
    from dgmbench.runner import quick_suite_models, run, validate

    names = quick_suite_models()
    if args.models:
        wanted = args.models.split(",")
        from dgmbench.models.base import MODELS

        for name in wanted:
            MODELS.get(name)  # unknown names fail with the list of valid ones
        names = [n for n in names if n in wanted]
    args.quick = True
    for name in names:  # -o/-t/-e apply to every model: check them all before the first trains
        for seed in seeds:
            validate(_spec_from_args(args, name, seed, {}))
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
    from dgmbench.report import build_leaderboards, load_baselines, load_results, render, write_site

    def listed(text):
        return [item.strip() for item in text.split(",") if item.strip()] if text else None

    for flag, folder in (("--results-dir", args.results_dir), ("--baselines-dir", args.baselines_dir)):
        if folder is not None and not Path(folder).is_dir():  # a typo must not print an empty board
            raise ValueError(f"{flag} {folder} is not a directory")
    if getattr(args, "reproductions", False):
        from dgmbench.report import render_reproductions, reproductions_frame

        text = render_reproductions(reproductions_frame(Path(args.results_dir), args.baselines_dir), args.format)
        print(text) if not args.output else (args.output.write_text(text), print(f"wrote {args.output}"))
        return 0
    boards = build_leaderboards(
        load_results(Path(args.results_dir)), load_baselines(args.baselines_dir), args.dataset,
        metrics=listed(getattr(args, "metrics", None)), models=listed(getattr(args, "models", None)),
        suite=args.suite, all_metrics=args.all_metrics,
    )
    if args.dataset and not boards:
        from dgmbench.data.base import DATASETS

        name = args.dataset.split("/")[0]
        DATASETS.get(name)  # an unknown dataset fails with the list of valid ones
    if args.format == "html" and args.output:
        pages = write_site(boards, args.output, Path(args.results_dir))
        print(f"wrote {len(pages) - 1} board pages and {pages[0]}")
        return 0
    text = render(boards, args.format)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_plot(args) -> int:
    from dgmbench.plots import plot_board

    for path in plot_board(Path(args.results_dir), args.dataset, args.output, metric=args.metric, suite=args.suite):
        print(f"wrote {path}")
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
        from dgmbench.metrics.base import GLOBAL_SETTINGS, METRICS, declared_settings

        def show(settings):
            for key, spec in settings.items():
                print(f"    -e {key}: {spec.valid(key).split(' must be ', 1)[1]}")

        print("every metric:")
        show(GLOBAL_SETTINGS)
        for name, metric in METRICS.items():
            print(name)
            show(declared_settings(metric))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UnknownNameError, ValueError, OSError) as err:  # bad input, a missing or unreadable user path
        print(f"dgmbench: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgmbench: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except RuntimeError as err:  # NonFiniteLossError and friends: say what happened, keep checkpoints
        print(f"dgmbench: error: {_one_line(err)}", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"  # e.g. "runs.csv: No such file or directory"
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
