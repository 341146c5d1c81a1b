"""Train, evaluate, record: what ``dgmbench run`` does for one (model, dataset, seed).

1. Resolve the configuration: the model's Config defaults < the family's trainer defaults
   < the quick-suite overrides (``--quick``) < the user's options.
2. Derive the run key, a hash of everything that determines the result. The run's
   checkpoints live in ``<workdir>/runs/<model>__<board>__<key>``: rerunning the same
   command after an interruption resumes there; rerunning it after it finished reports
   the existing record instead of adding a second one.
3. Train with the one trainer, evaluate every metric that applies on the test split,
   save a sample grid, and append one record with the full protocol to the store.

Every user-given value is checked first (:mod:`dgmbench.validation`), before any data is
loaded or any file written. One run directory is held by one process at a time (a lock
file): the same command started twice waits for the first and then reports its record.
``resume_from`` continues training from another run's last good checkpoint with changed
training options (e.g. a lower learning rate after a non-finite loss); the record says
which run and epoch it continued from, and that run's key is part of this run's key.

``reuse_training`` evaluates a finished run again under other evaluation settings (e.g.
``-e iwae_k=5000`` after a run scored with 200) without retraining: the run is the one the
same command would train (same key, same ``command``), its checkpoints are copied from the
named run, which must have the same model, board, options, seed and finished training;
the record names that run (``training_reused_from``).

``stop_after_hours`` limits one invocation, not the protocol (it is not part of the run
key): a run longer than the limit pauses at an epoch boundary, its best checkpoint so far
is evaluated and written as an *interim* record (``<results>/interim/``, with the epochs
done and planned, its learning curve and the command that continues it), and the same
command later continues from the checkpoint; the final record replaces the interim one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dgmbench.data.base import DATASETS, load_dataset
from dgmbench.metrics.base import EvalContext, evaluate, validate_eval_settings
from dgmbench.models.base import MODELS, TrainConfig
from dgmbench.plots import curves_path, save_sample_grid, save_training_curves
from dgmbench.provenance import device_info, git_commit, metric_thread_limits, versions
from dgmbench.registry import UnknownNameError
from dgmbench.results import DuplicateRecordError, ResultsStore, config_hash
from dgmbench.train import distributed
from dgmbench.train.checkpoint import load_checkpoint, save_checkpoint
from dgmbench.train.trainer import BEST, LAST, NonFiniteLossError, fit
from dgmbench.validation import ConfigError, build_config, check_options, check_train_options, shown

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock (concurrent duplicates are still refused by the store)
    fcntl = None

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
    # a run directory, or a run key (prefix) under <workdir>/runs, to continue training from
    resume_from: str | None = None
    # the published result this run reproduces (`dgmbench reproduce`): {"name": ..., baseline
    # fields}; its name is part of the run key and the whole dict goes into the record
    reproduces: dict | None = None
    # a limit of this invocation: pause (checkpoint, interim record) before it is passed
    stop_after_hours: float | None = None
    # a finished run (directory or key) whose training this run shares: evaluate its
    # checkpoints under this run's evaluation settings instead of training again
    reuse_training: str | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but CUDA is not available; use --device cpu")
    return device


def check_inception_weights(settings: dict) -> None:
    """Inception features asked for without weights fail here, before any training, not at the
    evaluation hours later (a corrected -e setting would change the run key and retrain)."""
    path = settings.get("inception_weights")
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"-e inception_weights={path!r}: no such file; give the path of a local copy of "
                              "torch-fidelity's Inception-v3 weights, or use -e inception=true to download them")
        return
    extractors = {settings.get("fid_extractor"), settings.get("prdc_extractor")} - {None}
    if extractors and not settings.get("inception", False):
        from dgmbench.metrics.features import INCEPTION, inception_weights_path  # imports torch-fidelity

        if INCEPTION not in extractors:
            return
        try:
            inception_weights_path(None, allow_download=False)
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None


def validate(spec: RunSpec) -> None:
    """Every check that needs no data: names, types and ranges of all options. Runs before
    anything is loaded, trained or written; raises a one-line ConfigError/UnknownNameError."""
    cls = MODELS.get(spec.model)
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or spec.seed < 0:
        raise ConfigError(f"--seed {spec.seed!r} is not valid: a seed is an integer >= 0")
    if spec.dataset is not None:
        name, _, variant = spec.dataset.partition("/")
        datasets = DATASETS.get(name)
        if variant and variant not in datasets.variants:
            raise UnknownNameError(f"dataset {name!r} has no variant {variant!r}; valid variants: "
                                   f"{', '.join(datasets.variants)}")
    check_options(cls.Config, spec.model_options, "-o", f"model {spec.model!r}")
    check_train_options(spec.train_options)
    validate_eval_settings(spec.eval_options)
    check_inception_weights(spec.eval_options)
    resolve_device(spec.device)
    hours = spec.stop_after_hours
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0):
        raise ConfigError(f"--stop-after-hours {hours!r} is not valid: give a number of hours > 0, e.g. 1.5")
    if spec.resume_from is not None:
        find_run_dir(spec.resume_from, spec.workdir)
    if spec.reuse_training is not None:
        if spec.resume_from is not None:
            raise ConfigError("--reuse-training and --resume-from exclude each other: reuse a finished run's "
                              "training, or continue training from a run, not both")
        find_run_dir(spec.reuse_training, spec.workdir, "--reuse-training")


def find_run_dir(ref: str, workdir: str, flag: str = "--resume-from") -> Path:
    """The run directory `ref` names: a path, or a run key (prefix, >= 6 hex digits) of a
    run under <workdir>/runs. It must hold a checkpoint to continue from."""
    path = Path(ref)
    if not path.is_dir():
        runs = Path(workdir) / "runs"
        matches = sorted(runs.glob(f"*__{ref.lower()}*")) if re.fullmatch(r"[0-9a-fA-F]{6,64}", ref) else []
        matches = [m for m in matches if m.name.rsplit("__", 1)[-1].startswith(ref.lower()[:12])]
        if len(matches) != 1:
            found = "several runs match it" if matches else f"no run directory and no run key under {runs}"
            raise ConfigError(f"{flag} {ref!r}: {found}; give a run directory "
                              f"(e.g. {runs}/<model>__<board>__<key>) or a longer run key")
        path = matches[0]
    if not (path / LAST).exists():
        raise ConfigError(f"{flag} {ref!r}: {path} holds no checkpoint ({LAST})")
    return path


def resolve(spec: RunSpec):
    """(model class, dataset, model config, train config) for a spec."""
    validate(spec)
    cls = MODELS.get(spec.model)
    dataset_name = spec.dataset or quick_dataset_name(cls)
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
    check_options(cls.Config, model_options, "-o", f"model {spec.model!r}")
    check_train_options(train_options)
    model_config = build_config(cls.Config, model_options, "-o", f"model {spec.model!r}")
    train_config = build_config(TrainConfig, train_options, "-t", "training")
    return cls, dataset, model_config, train_config


def reproduce_command(spec: RunSpec, dataset_board: str) -> str:
    """A command line that reproduces this run exactly."""
    if spec.reproduces is not None:  # the reproduction's options live in baselines/
        words = ["dgmbench", "reproduce", spec.reproduces["name"]]
        return shlex.join(words + (["--device", spec.device] if spec.device != "auto" else []))
    words = ["dgmbench", "run", "--model", spec.model, "--dataset", dataset_board, "--seed", str(spec.seed)]
    if spec.quick:
        words.append("--quick")
    for flag, options in (("-o", spec.model_options), ("-t", spec.train_options), ("-e", spec.eval_options)):
        for key, value in sorted(options.items()):
            words += [flag, f"{key}={_toml_value(value)}"]
    if spec.device != "auto":
        words += ["--device", spec.device]
    if spec.resume_from is not None:
        words += ["--resume-from", str(spec.resume_from)]
    return shlex.join(words)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "none"
    return repr(value) if not isinstance(value, (list, tuple)) else "[" + ", ".join(map(_toml_value, value)) + "]"


def identity_config(model_config) -> dict:
    """The model config as the run key sees it: every field, less those the Config lists in
    ``identity_neutral`` (options added after records existed) while they are at their
    default, so that adding an option with a behaviour-preserving default keeps every
    committed record's key."""
    fields = dataclasses.asdict(model_config)
    defaults = {f.name: f.default for f in dataclasses.fields(model_config)}
    for name in getattr(type(model_config), "identity_neutral", ()):
        if name in fields and fields[name] == defaults[name]:
            del fields[name]
    return fields


def evaluate_run(model, dataset, settings: dict, device, seed: int, quick: bool, workdir: str) -> list:
    """A run's evaluation on the test split: its settings (``-e``), its seed for every
    sample-based metric, numpy's BLAS at one thread. Shared by the runner and
    scripts/evaluate_checkpoint.py, so a checkpoint scored later gets the record's protocol."""
    ctx = EvalContext(
        split="test",
        batch_size=int(settings.get("batch_size", 100)),
        device=device,
        seed=seed,
        quick=quick,
        settings=settings,
        workdir=str(Path(workdir) / "cache"),
    )
    only = settings.get("metrics")  # e.g. -e 'metrics=["exact_likelihood"]'; default: all that apply
    with metric_thread_limits():  # numpy's BLAS at one thread (provenance.METRIC_BLAS_THREADS)
        return evaluate(model, dataset, ctx, only=[only] if isinstance(only, str) else only)


def checkpoint_selection(model, summary) -> str:
    """Which checkpoint was evaluated, in words, for the record."""
    if summary.best_validation is None:
        return f"last: epoch {summary.epochs_completed} (no validation score)"
    what = getattr(model, "validation_score_description", "validation score")
    return f"lowest {what}: epoch {summary.best_epoch} of {summary.epochs_completed}"


def run_identity(spec: RunSpec, board: str, model_config, train_config, continued_from: dict | None = None):
    """(identity, group hash, run key): everything that determines a run's result, the hash
    shared by all its seeds (the leaderboard's grouping key) and the key of this seed's record."""
    identity = {
        "model": spec.model,
        "board": board,
        "model_config": identity_config(model_config),
        "train_config": {k: v for k, v in dataclasses.asdict(train_config).items() if k != "seed"},
        "eval_settings": dict(spec.eval_options),
        "quick": spec.quick,
    }
    if continued_from is not None:  # a different training history: a different run and group
        identity["continued_from"] = {"run": continued_from["run"], "epoch": continued_from["epoch"]}
    if spec.reproduces is not None:  # absent otherwise, so that every other run keeps its key
        identity["reproduces"] = spec.reproduces["name"]
    group_hash = config_hash(identity)
    return identity, group_hash, config_hash({**identity, "seed": spec.seed})


def planned_run_key(spec: RunSpec) -> str:
    """The key a finished run of `spec` is recorded under, computed without training (for
    sweeps and checks that skip or compare recorded runs). Not for --resume-from runs."""
    _, dataset, model_config, train_config = resolve(spec)
    return run_identity(spec, dataset.info.board, model_config, train_config)[2]


def run(spec: RunSpec, log=print) -> dict:
    tic = time.perf_counter()
    cls, dataset, model_config, train_config = resolve(spec)
    info = dataset.info
    device = resolve_device(spec.device)
    settings = dict(spec.eval_options)
    board_stem = f"{spec.model}__{info.board.replace('/', '__')}"
    continued_from = _continuation(spec, board_stem, train_config) if spec.resume_from is not None else None
    identity, group_hash, run_key = run_identity(spec, info.board, model_config, train_config, continued_from)
    reused = _reused_training(spec, identity, run_key, train_config) if spec.reuse_training is not None else None
    store = ResultsStore(Path(spec.results_dir))
    if store.existing(run_key) and not spec.force:
        path = store.existing(run_key)[0]
        log(f"already recorded: {path} (use --force to run it again)")
        return store.load_one(path)

    torch.manual_seed(spec.seed)
    try:
        model = cls(model_config, info).to(device)
    except (ValueError, RuntimeError, TypeError, ZeroDivisionError) as err:  # e.g. a layer refusing a size
        if isinstance(err, ValueError) and not spec.model_options:
            raise  # the model's own message about the data (e.g. a value type it does not model)
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        given = " ".join(f"-o {k}={shown(v)}" for k, v in sorted(spec.model_options.items())) or "its defaults"
        raise ConfigError(f"model {spec.model!r} cannot be built with {given} on {info.board}: {first_line}") from None

    run_dir = Path(spec.workdir) / "runs" / f"{board_stem}__{run_key[:12]}"
    with run_lock(run_dir, log):
        if store.existing(run_key) and not spec.force:  # recorded by the process we waited for
            path = store.existing(run_key)[0]
            log(f"already recorded: {path} (use --force to run it again)")
            return store.load_one(path)
        if reused is not None and not (run_dir / LAST).exists():
            _copy_checkpoints(Path(reused["run_dir"]), run_dir)
            log(f"reusing the training of {reused['run']} (epoch {reused['epoch']}): evaluating only")
        return _train_evaluate_record(spec, cls, dataset, model, model_config, train_config, device, settings,
                                      identity, run_key, group_hash, run_dir, store, continued_from, tic, log,
                                      reused)


@contextlib.contextmanager
def run_lock(run_dir: Path, log=print):
    """Hold <run_dir>/.lock for the duration of one run, so that one process at a time trains,
    evaluates and records it; a second process with the same run waits here (the lock is
    released by the kernel when its holder exits, even after kill -9)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not distributed.is_main():  # a data-parallel run: rank 0 holds the lock for all its ranks
        yield
        return
    with open(run_dir / ".lock", "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"this exact run is already running in another process ({run_dir}); waiting for it to finish")
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _continuation(spec: RunSpec, board_stem: str, train_config: TrainConfig) -> dict:
    """What --resume-from continues: the source run directory (same model and board), its
    last good checkpoint and the epoch it holds."""
    source = find_run_dir(spec.resume_from, spec.workdir).resolve()
    if not source.name.startswith(board_stem + "__"):
        raise ConfigError(f"--resume-from {spec.resume_from!r}: {source.name} is not a run of {spec.model} on "
                          f"{board_stem.split('__', 1)[1].replace('__', '/')}; continue a run of the same model and dataset")
    ckpt = load_checkpoint(source / LAST)
    epoch = int(ckpt["epoch"])
    if epoch >= train_config.epochs:
        raise ConfigError(f"--resume-from {spec.resume_from!r}: that run has already trained {epoch} epochs; "
                          f"ask for more with -t epochs=N (N > {epoch})")
    meta = _read_run_meta(source)
    return {"run": source.name, "run_dir": str(source), "epoch": epoch,
            "run_key": meta.get("run_key"), "train_config": meta.get("identity", {}).get("train_config"),
            "optimizer_state": "reset: optimisers start afresh under this run's training options"}


def _reused_training(spec: RunSpec, identity: dict, run_key: str, train_config: TrainConfig) -> dict:
    """What --reuse-training reuses: a finished run whose identity equals this run's in
    everything but the evaluation settings (and seed-for-seed), or a one-line error."""
    flag = "--reuse-training"
    source = find_run_dir(spec.reuse_training, spec.workdir, flag).resolve()
    meta = _read_run_meta(source)
    theirs = meta.get("identity")
    if not isinstance(theirs, dict):
        raise ConfigError(f"{flag} {spec.reuse_training!r}: {source} has no readable {RUN_META}; rerun training instead")
    same = {k: v for k, v in identity.items() if k != "eval_settings"}
    if {k: v for k, v in theirs.items() if k != "eval_settings"} != json.loads(json.dumps(same, default=str)) \
            or meta.get("run_key") != config_hash({**theirs, "seed": spec.seed}):
        differs = sorted(k for k in set(same) | set(theirs) - {"eval_settings"}
                         if json.dumps(same.get(k), default=str, sort_keys=True)
                         != json.dumps(theirs.get(k), default=str, sort_keys=True))
        what = ", ".join(differs) if differs else "seed"
        raise ConfigError(f"{flag} {spec.reuse_training!r}: that run was trained differently ({what}); give the same "
                          "model, dataset, -o/-t options and seed, changing only -e")
    if meta.get("run_key") == run_key:
        raise ConfigError(f"{flag} {spec.reuse_training!r}: that is this very run (same -e settings); change an -e "
                          "setting, or drop the flag")
    ckpt = load_checkpoint(source / LAST)
    epoch = int(ckpt["epoch"])
    if epoch < train_config.epochs and not ckpt.get("stopped_early"):
        raise ConfigError(f"{flag} {spec.reuse_training!r}: that run has trained {epoch} of {train_config.epochs} "
                          "epochs; finish it first (rerun its command)")
    return {"run": source.name, "run_dir": str(source), "run_key": meta["run_key"], "epoch": epoch}


def _copy_checkpoints(source: Path, run_dir: Path) -> None:
    """The finished run's checkpoints (optimiser state included) into this run's directory:
    the trainer resumes at their last epoch and so trains nothing."""
    for name in (BEST, LAST):
        if (source / name).exists():
            save_checkpoint(load_checkpoint(source / name), run_dir / name)


def _read_run_meta(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / RUN_META).read_text())
    except (OSError, ValueError):
        return {}


RUN_META = "run.json"  # in each run directory: the run's key and identity, for --resume-from


def _start_continuation(run_dir: Path, continued_from: dict) -> None:
    """Seed a fresh run directory with the source run's last good (and best) checkpoint;
    its optimiser states are dropped so that the new training options take effect."""
    if (run_dir / LAST).exists():
        return  # this continued run was itself interrupted: it resumes from its own checkpoint
    source = Path(continued_from["run_dir"])
    ckpt = load_checkpoint(source / LAST)
    ckpt["optimizers"] = None
    if (source / BEST).exists():
        save_checkpoint(load_checkpoint(source / BEST), run_dir / BEST)
    save_checkpoint(ckpt, run_dir / LAST)


def _advice(spec: RunSpec, err: NonFiniteLossError, train_config: TrainConfig, run_dir: Path, board: str) -> str:
    """A command that works after a non-finite loss: continue from this run's last good
    checkpoint (or start again, if there is none) with a 10x lower learning rate."""
    lower = {**spec.train_options, "lr": float(f"{train_config.lr / 10:.3g}")}
    resume = str(run_dir) if err.checkpoint is not None else None
    command = reproduce_command(dataclasses.replace(spec, train_options=lower, resume_from=resume), board)
    extra = []
    if Path(spec.results_dir) != Path("results"):
        extra += ["--results-dir", spec.results_dir]
    if Path(spec.workdir) != Path(".dgmbench"):
        extra += ["--workdir", spec.workdir]
    command = " ".join([command, *map(shlex.quote, extra)])
    what = "To continue from that checkpoint" if resume else "To start again"
    return f"{what} with a 10x lower learning rate: {command}"


def _train_evaluate_record(spec, cls, dataset, model, model_config, train_config, device, settings, identity,
                           run_key, group_hash, run_dir, store, continued_from, tic, log, reused=None) -> dict:
    info = dataset.info
    if distributed.is_main():
        (run_dir / RUN_META).write_text(json.dumps({"run_key": run_key, "identity": identity}, indent=1, default=str))
    if continued_from is not None:
        if distributed.is_main():  # one writer seeds the run directory; the others wait for it
            _start_continuation(run_dir, continued_from)
        distributed.barrier()
        log(f"continuing {continued_from['run']} from epoch {continued_from['epoch']} with new training options")
    log(f"{spec.model} on {info.board} (seed {spec.seed}, {model.num_parameters():,} parameters, {device})")
    if store.interim(run_key) and not (run_dir / LAST).exists():
        log(f"{store.interim(run_key)[0]} records a paused run, but {run_dir} holds no checkpoint to continue "
            "from (checkpoints are not committed): training starts from epoch 0")
    deadline = tic + 3600 * spec.stop_after_hours if spec.stop_after_hours is not None else None
    try:
        summary = fit(model, dataset, train_config, run_dir, device, progress=spec.progress, log=log,
                      deadline=None if deadline is None else deadline - time.perf_counter() + time.time())
    except NonFiniteLossError as err:
        raise NonFiniteLossError(f"{err} {_advice(spec, err, train_config, run_dir, info.board)}",
                                 err.checkpoint, err.checkpoint_epoch) from None
    if not distributed.is_main():  # data-parallel: rank 0 evaluates and records
        return {}

    eval_tic = time.perf_counter()
    metrics = evaluate_run(model, dataset, settings, device, spec.seed, spec.quick, spec.workdir)
    eval_seconds = time.perf_counter() - eval_tic

    torch.manual_seed(spec.seed)
    samples = model.sample(SAMPLE_GRID_SIZE).cpu()
    stem = f"{spec.model}__{info.board.replace('/', '__')}__seed{spec.seed}__{run_key[:12]}"
    grid = save_sample_grid(samples, info, Path(spec.results_dir) / "samples" / f"{stem}.png", title=stem)
    save_training_curves(summary.history, curves_path(grid), title=stem)  # <stem>__curves.png beside the grid
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
        "continued_from": continued_from,
        "reproduces": spec.reproduces,
        # the training was that of this run (same key but for -e), evaluated again
        "training_reused_from": None if reused is None else {k: reused[k] for k in ("run", "run_key", "epoch")},
        "metrics": [m.to_dict() for m in metrics],
        "training": {
            "epochs_completed": summary.epochs_completed,
            "best_epoch": summary.best_epoch,
            "best_validation": summary.best_validation,
            "checkpoint_selection": checkpoint_selection(model, summary),
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
        "data_parallel": distributed.describe(),
    }
    if summary.paused_at_deadline:
        return _record_interim(spec, record, summary, train_config, info.board, store, log)
    try:
        path = store.append(record, force=spec.force)
    except DuplicateRecordError:  # recorded meanwhile by a process with another workdir
        path = store.existing(run_key)[0]
        log(f"already recorded by another process: {path} (use --force to record a repeat)")
        return store.load_one(path)
    log(f"recorded {path}")
    record["_path"] = str(path)
    return record


def continue_command(spec: RunSpec, board: str) -> str:
    """The command that continues a paused run under the same limit per invocation."""
    words = [reproduce_command(spec, board)]
    results_dir, workdir = _portable_path(spec.results_dir), _portable_path(spec.workdir)
    if Path(results_dir) != Path("results"):
        words += ["--results-dir", shlex.quote(results_dir)]
    if Path(workdir) != Path(".dgmbench"):
        words += ["--workdir", shlex.quote(workdir)]
    return " ".join(words + ["--stop-after-hours", f"{spec.stop_after_hours:g}"])


def _portable_path(path: str) -> str:
    """`path` relative to the working directory when inside it (a committed record's command
    then works from any clone), else as given."""
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(path)


def _kept_checkpoint(record: dict) -> str:
    history = (record.get("training") or {}).get("history") or []
    validated = any(h.get("valid") is not None and math.isfinite(h["valid"]) for h in history)
    return "best-validation checkpoint" if validated else "last checkpoint (no validation score)"


def _record_interim(spec, record, summary, train_config, board, store, log) -> dict:
    """A paused run: its best checkpoint so far, evaluated, as the run's interim record."""
    record["interim"] = {
        "epochs_completed": summary.epochs_completed,
        "planned_epochs": train_config.epochs,
        "reason": f"paused at the invocation limit --stop-after-hours {spec.stop_after_hours:g}; "
                  f"the metrics are those of the {_kept_checkpoint(record)} so far",
        "continue": continue_command(spec, board),
        "checkpoint_dir": "the run directory under the workdir (not committed): continuing needs it, "
                          "else training restarts from epoch 0",
    }
    path = store.put_interim(record)
    log(f"paused after epoch {summary.epochs_completed} of {train_config.epochs}; interim record {path}; "
        f"continue with: {record['interim']['continue']}")
    record["_path"] = str(path)
    return record


def quick_dataset_name(cls) -> str:
    """The quick suite's dataset of a model class: its quick_dataset(), else digits/<quick_variant()>."""
    return cls.quick_dataset() or f"{QUICK_DATASET}/{cls.quick_variant()}"


def quick_suite_models() -> list[str]:
    """Every registered model that takes part in the quick suite."""
    names = []
    for name, cls in MODELS.items():
        info = load_dataset(quick_dataset_name(cls)).info
        if cls.quick_config(info) is not None:
            names.append(name)
    return names
