"""Train, evaluate, record: what ``dgmbench run`` does for one (model, dataset, seed).

1. Resolve the configuration: the model's Config defaults < the family's trainer defaults
   < the quick-suite overrides (``--quick``) < the user's options.
2. Derive the run key, a hash of everything that determines the result. The run's
   checkpoints live in ``<workdir>/runs/<model>__<board>__<key>``: rerunning the same
   command after an interruption resumes there; rerunning it after it finished reports
   the existing record instead of adding a second one.
3. Train with the one trainer, evaluate every metric that applies on the test split,
   save a sample grid, and append one record with the full protocol to the store.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dgmbench.data.base import load_dataset
from dgmbench.metrics.base import EvalContext, evaluate
from dgmbench.models.base import MODELS, TrainConfig, make_config
from dgmbench.plots import save_sample_grid
from dgmbench.provenance import device_info, git_commit, versions
from dgmbench.results import ResultsStore, config_hash
from dgmbench.train.trainer import fit

QUICK_DATASET = "digits"
SAMPLE_GRID_SIZE = 64


@dataclass
class RunSpec:
    model: str
    dataset: str | None = None  # "name" or "name/variant"; None: the quick-suite dataset
    model_options: dict = field(default_factory=dict)
    train_options: dict = field(default_factory=dict)
    eval_options: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    quick: bool = False
    results_dir: str = "results"
    workdir: str = ".dgmbench"
    force: bool = False
    progress: bool = True


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but CUDA is not available; use --device cpu")
    return device


def resolve(spec: RunSpec):
    """(model class, dataset, model config, train config) for a spec."""
    cls = MODELS.get(spec.model)
    dataset_name = spec.dataset or f"{QUICK_DATASET}/{cls.quick_variant()}"
    dataset = load_dataset(dataset_name)
    model_options, train_options = {}, dict(cls.train_defaults)
    if spec.quick:
        quick = cls.quick_config(dataset.info)
        if quick is None:
            raise ValueError(f"model {spec.model!r} is not part of the quick suite")
        model_options.update(quick)
        train_options.update(cls.quick_train(dataset.info))
    model_options.update(spec.model_options)
    train_options.update(spec.train_options)
    train_options["seed"] = spec.seed
    model_config = make_config(cls.Config, model_options, what=f"model {spec.model!r}")
    train_config = make_config(TrainConfig, train_options, what="training")
    return cls, dataset, model_config, train_config


def reproduce_command(spec: RunSpec, dataset_board: str) -> str:
    """A command line that reproduces this run exactly."""
    words = ["dgmbench", "run", "--model", spec.model, "--dataset", dataset_board, "--seed", str(spec.seed)]
    if spec.quick:
        words.append("--quick")
    for flag, options in (("-o", spec.model_options), ("-t", spec.train_options), ("-e", spec.eval_options)):
        for key, value in sorted(options.items()):
            words += [flag, f"{key}={_toml_value(value)}"]
    if spec.device != "auto":
        words += ["--device", spec.device]
    return shlex.join(words)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "none"
    return repr(value) if not isinstance(value, (list, tuple)) else "[" + ", ".join(map(_toml_value, value)) + "]"


def run(spec: RunSpec, log=print) -> dict:
    tic = time.perf_counter()
    cls, dataset, model_config, train_config = resolve(spec)
    info = dataset.info
    device = resolve_device(spec.device)
    settings = dict(spec.eval_options)
    identity = {
        "model": spec.model,
        "board": info.board,
        "model_config": dataclasses.asdict(model_config),
        "train_config": {k: v for k, v in dataclasses.asdict(train_config).items() if k != "seed"},
        "eval_settings": settings,
        "quick": spec.quick,
    }
    group_hash = config_hash(identity)  # same for every seed: the leaderboard's grouping key
    run_key = config_hash({**identity, "seed": spec.seed})
    store = ResultsStore(Path(spec.results_dir))
    if store.existing(run_key) and not spec.force:
        path = store.existing(run_key)[0]
        log(f"already recorded: {path} (use --force to run it again)")
        return store.load_one(path)

    run_dir = Path(spec.workdir) / "runs" / f"{spec.model}__{info.board.replace('/', '__')}__{run_key[:12]}"
    torch.manual_seed(spec.seed)
    model = cls(model_config, info).to(device)
    log(f"{spec.model} on {info.board} (seed {spec.seed}, {model.num_parameters():,} parameters, {device})")
    summary = fit(model, dataset, train_config, run_dir, device, progress=spec.progress, log=log)

    eval_tic = time.perf_counter()
    ctx = EvalContext(
        split="test",
        batch_size=int(settings.get("batch_size", 100)),
        device=device,
        seed=spec.seed,
        quick=spec.quick,
        settings=settings,
        workdir=str(Path(spec.workdir) / "cache"),
    )
    only = settings.get("metrics")  # e.g. -e 'metrics=["exact_likelihood"]'; default: all that apply
    metrics = evaluate(model, dataset, ctx, only=[only] if isinstance(only, str) else only)
    eval_seconds = time.perf_counter() - eval_tic

    torch.manual_seed(spec.seed)
    samples = model.sample(SAMPLE_GRID_SIZE).cpu()
    stem = f"{spec.model}__{info.board.replace('/', '__')}__seed{spec.seed}__{run_key[:12]}"
    grid = save_sample_grid(samples, info, Path(spec.results_dir) / "samples" / f"{stem}.png", title=stem)
    torch.save(samples, run_dir / "samples.pt")

    record = {
        "schema": 1,
        "run_key": run_key,
        "config_hash": group_hash,
        "model": spec.model,
        "family": cls.family,
        "dataset": info.name,
        "variant": info.variant,
        "board": info.board,
        "suite": "quick" if spec.quick else None,
        "seed": spec.seed,
        "model_config": dataclasses.asdict(model_config),
        "train_config": dataclasses.asdict(train_config),
        "eval_settings": settings,
        "metrics": [m.to_dict() for m in metrics],
        "training": {
            "epochs_completed": summary.epochs_completed,
            "best_epoch": summary.best_epoch,
            "best_validation": summary.best_validation,
            "stopped_early": summary.stopped_early,
            "resumed_from_epoch": summary.resumed_from_epoch,
            "train_seconds": round(summary.train_seconds, 3),
            "history": summary.history,
        },
        "eval_seconds": round(eval_seconds, 3),
        # this invocation plus the training time of interrupted earlier ones (resume)
        "wall_seconds": round(time.perf_counter() - tic + summary.seconds_before_resume, 3),
        "n_parameters": model.num_parameters(),
        "data": {
            "n_train": len(dataset.split("train")),
            "n_valid": len(dataset.split("valid")),
            "n_test": len(dataset.split("test")),
            "value_type": info.value_type,
            "shape": list(info.shape),
        },
        "samples": str(grid),
        "command": reproduce_command(spec, info.board),
        "argv": shlex.join(["dgmbench", *sys.argv[1:]]) if Path(sys.argv[0]).name == "dgmbench" else None,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(),
        "versions": versions(),
        "device": device_info(device),
    }
    path = store.append(record, force=spec.force)
    log(f"recorded {path}")
    record["_path"] = str(path)
    return record


def quick_suite_models() -> list[str]:
    """Every registered model that takes part in the quick suite."""
    names = []
    for name, cls in MODELS.items():
        info = load_dataset(f"{QUICK_DATASET}/{cls.quick_variant()}").info
        if cls.quick_config(info) is not None:
            names.append(name)
    return names
