"""``dgmbench sweep SWEEP.toml``: a grid of runs (models x datasets x seeds x option lists),
on Ray when it is installed, sequentially otherwise, with the same records either way.

A sweep file::

    models = ["nade", "fvsbn"]
    datasets = ["digits/binary"]          # optional; default: each model's quick-suite board
    seeds = [0, 1, 2]
    quick = true                          # each model's quick-suite configuration
    device = "cpu"                        # optional; "cuda" gives every task one GPU
    cpus_per_run = 1                      # optional: threads and Ray CPUs of each run

    [model_options]                       # lists are grid axes; scalars apply to every run
    hidden = [16, 32]                     # ... for every model listed (each must accept it)
    [model_options.nade]                  # ... or for one model only
    hidden = [8]
    [train_options]
    epochs = 5
    [eval_options]
    iwae_k = 100

    [[variants]]                          # optional: named runs beside (or instead of) `models`,
    model = "gan"                         # each its own model with its own option tables
    model_options = { feature_matching = true }   # (merged over the shared tables above;
    train_options = { lr = 1e-3 }                 #  lists are grid axes here too)
    datasets = ["ring8/continuous"]               # optional: this variant's boards (default: the sweep's)

A sweep may start from another one: ``extends = "gans_mnist.toml"`` (a path relative to this
file) reads that sweep first, then this file's keys on top: tables (``[train_options]``,
``[model_options.nade]``, ...) merge key by key, everything else (lists included:
``models``, ``seeds``, ``[[variants]]``) replaces. So a longer run of a committed sweep
states only what differs (``[train_options] epochs = 25``), and the two cannot drift apart.
Write ``variants = []`` to drop the base's variants.

Design (why it is safe to kill anything at any time):

* The driver (this process) is the only writer of the results store. A task trains in a
  scratch results directory on its worker and *returns* its record and sample-grid PNG;
  the driver appends the record (atomic, exclusive: :class:`dgmbench.results.ResultsStore`)
  and writes the PNG. Workers therefore need no shared file system with the driver.
* Runs already recorded (same run key) are skipped before anything is scheduled.
* A task whose worker dies is retried by Ray (``max_retries``); it resumes from its run
  directory's checkpoint when the retry lands on the same machine, else starts again. A
  retried task can never produce a second record: only the driver writes, once per run key,
  and the store refuses a duplicate key.
* Without Ray (not installed, or ``--no-ray``) the very same task function runs in this
  process, one run after another, with the same thread count: the same metrics.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import shutil
import tempfile
from pathlib import Path

from dgmbench.validation import ConfigError, read_toml_file

SWEEP_KEYS = {"models", "datasets", "seeds", "quick", "device", "cpus_per_run", "model_options",
              "train_options", "eval_options", "max_retries", "variants", "extends"}
VARIANT_KEYS = {"model", "datasets", "model_options", "train_options", "eval_options"}


# --------------------------------------------------------------------------- the grid
def _merged(base: dict, override: dict) -> dict:
    """`override` over `base`: tables merge recursively, any other value replaces."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_extended(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The sweep file at `path` with its `extends` chain resolved (base first)."""
    path = Path(path)
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ConfigError(f"sweep file {path}: `extends` loops back on itself ({chain}); remove one `extends`")
    sweep = read_toml_file(path, f"sweep file {path}")
    base_name = sweep.pop("extends", None)
    if base_name is None:
        return sweep
    if not isinstance(base_name, str):
        raise ConfigError(f"sweep file {path}: `extends` must be a file name, e.g. extends = \"gans_mnist.toml\"")
    base_path = path.parent / base_name
    if not base_path.is_file():
        raise ConfigError(f"sweep file {path}: `extends` names {base_path}, which does not exist "
                          f"(the path is relative to {path.parent})")
    return _merged(_read_extended(base_path, (*seen, path.resolve())), sweep)


def read_sweep(path: Path) -> dict:
    sweep = _read_extended(path)
    unknown = sorted(set(sweep) - SWEEP_KEYS)
    if unknown:
        raise ConfigError(f"sweep file {path}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(SWEEP_KEYS))}")
    if not sweep.get("models") and not sweep.get("variants"):
        raise ConfigError(f"sweep file {path}: `models` (or `variants`) must list at least one model")
    for number, variant in enumerate(sweep.get("variants", []), 1):
        if not isinstance(variant, dict) or not isinstance(variant.get("model"), str):
            raise ConfigError(f"sweep file {path}: variant {number} needs a `model` name ([[variants]] model = ...)")
        unknown = sorted(set(variant) - VARIANT_KEYS)
        if unknown:
            raise ConfigError(f"sweep file {path}: variant {number} has unknown key {unknown[0]!r}; valid keys: "
                              f"{', '.join(sorted(VARIANT_KEYS))}")
    return sweep


def _axes(options: dict) -> list[dict]:
    """The product of an option table's list values (scalars are fixed): [{key: value}, ...]."""
    keys = sorted(options)
    values = [options[k] if isinstance(options[k], list) else [options[k]] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _options_for(table: dict, model: str, models: list[str]) -> dict:
    """Options of `table` that apply to `model`: the shared scalars/lists plus its own sub-table."""
    shared = {k: v for k, v in table.items() if not (isinstance(v, dict) and k in models)}
    own = table.get(model, {}) if isinstance(table.get(model), dict) else {}
    return {**shared, **own}


def expand(sweep: dict, results_dir: str, workdir: str) -> list:
    """Every RunSpec of the grid, validated (names, types, ranges) before any run starts."""
    from dgmbench.runner import RunSpec, validate

    models = list(sweep.get("models", []))
    # (model, its own option tables): each listed model, then each [[variants]] entry
    runs = [(model, {}) for model in models] + [(v["model"], v) for v in sweep.get("variants", [])]
    models = models + [model for model, _ in runs if model not in models]  # sub-table names
    datasets = sweep.get("datasets") or [None]
    seeds = sweep.get("seeds", [0])
    specs = []
    tables = ("model_options", "train_options", "eval_options")
    # a variant may name its own datasets (else the sweep's)
    for (model, own), dataset in ((run, d) for run in runs for d in (run[1].get("datasets") or datasets)):
        grids = [_axes({**_options_for(sweep.get(t, {}), model, models), **own.get(t, {})}) for t in tables]
        for model_options, train_options, eval_options in itertools.product(*grids):
            for seed in seeds:
                spec = RunSpec(model=model, dataset=dataset, model_options=model_options,
                               train_options=train_options, eval_options=eval_options, seed=seed,
                               device=sweep.get("device", "auto"), quick=bool(sweep.get("quick", False)),
                               results_dir=results_dir, workdir=workdir, progress=False)
                validate(spec)
                specs.append(spec)
    return specs


# --------------------------------------------------------------------------- one task
def execute(spec_fields: dict, threads: int) -> dict:
    """Train, evaluate and return one run's record (with its sample grid as PNG bytes) without
    touching the caller's results store. Runs on a Ray worker or in the driver alike."""
    import torch

    from dgmbench.runner import RunSpec, run

    torch.set_num_threads(threads)
    spec = RunSpec(**spec_fields)
    scratch = Path(tempfile.mkdtemp(prefix="dgmbench-sweep-"))
    try:
        record = run(dataclasses.replace(spec, results_dir=str(scratch)), log=lambda *a, **k: None)
        grid = Path(record.get("samples") or "")
        png = {}
        for path in (grid, grid.with_name(grid.stem + "__curves.png")):
            if path.is_file():
                png[path.name] = path.read_bytes()
        record.pop("_path", None)
        return {"record": record, "png": png}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _store_result(result: dict, store, results_dir: Path) -> Path:
    """Write a task's PNGs and append its record (the driver is the only writer)."""
    from dgmbench.results import DuplicateRecordError

    record = result["record"]
    samples_dir = results_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    for name, data in result["png"].items():
        tmp = samples_dir / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, samples_dir / name)
    if record.get("samples"):
        record["samples"] = str(samples_dir / Path(record["samples"]).name)
    try:
        return store.append(record)
    except DuplicateRecordError:
        return store.existing(record["run_key"])[0]


# --------------------------------------------------------------------------- runners
def run_sweep(specs: list, results_dir: Path, use_ray: bool, address: str | None, cpus_per_run: int,
              max_retries: int = 3, progress: bool = True, log=print) -> dict:
    """Run every spec not yet recorded; returns counts {"done", "skipped", "failed"}."""
    from tqdm import tqdm

    from dgmbench.results import ResultsStore
    from dgmbench.runner import planned_run_key

    store = ResultsStore(results_dir)
    todo = [s for s in specs if not store.existing(planned_run_key(s))]
    counts = {"done": 0, "skipped": len(specs) - len(todo), "failed": 0}
    if counts["skipped"]:
        log(f"{counts['skipped']} of {len(specs)} runs already recorded in {results_dir}: skipped")
    if not todo:
        return counts
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)
    failures = []

    def finished(spec, result=None, error=None):
        if error is None:
            _store_result(result, store, results_dir)
            counts["done"] += 1
        else:
            counts["failed"] += 1
            failures.append(f"{spec.model} seed {spec.seed}: {str(error).strip().splitlines()[-1]}")
        bar.update(1)

    fields = [dataclasses.asdict(s) for s in todo]
    if use_ray:
        _run_on_ray(todo, fields, address, cpus_per_run, max_retries, bar, counts, finished)
    else:
        for spec, spec_fields in zip(todo, fields):
            bar.set_postfix(done=counts["done"], running=1, failed=counts["failed"])
            try:
                result = execute(spec_fields, cpus_per_run)
            except Exception as err:  # one failed run does not stop the sweep; reported below
                finished(spec, error=err)
            else:
                finished(spec, result)
    bar.set_postfix(done=counts["done"], running=0, failed=counts["failed"])
    bar.close()
    for line in failures:
        log(f"failed: {line}")
    return counts


def _run_on_ray(todo, fields, address, cpus_per_run, max_retries, bar, counts, finished) -> None:
    import ray

    if not ray.is_initialized():
        # A local instance uses this machine's cores; --address joins an existing cluster.
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    task = ray.remote(execute)
    pending = {}
    for spec, spec_fields in zip(todo, fields):
        gpus = 1 if str(spec.device).startswith("cuda") else 0
        ref = task.options(num_cpus=cpus_per_run, num_gpus=gpus, max_retries=max_retries,
                           retry_exceptions=False, name=f"dgmbench:{spec.model}:seed{spec.seed}").remote(
            spec_fields, cpus_per_run)
        pending[ref] = spec
    while pending:
        bar.set_postfix(done=counts["done"], running=len(pending), failed=counts["failed"])
        ready, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as err:  # RayTaskError (the run raised) or worker lost after its retries
            finished(spec, error=err)
        else:
            finished(spec, result)


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- CLI
def cmd_sweep(args) -> int:
    sweep = read_sweep(args.sweep_file)
    specs = expand(sweep, args.results_dir, args.workdir)
    use_ray = not args.no_ray
    if use_ray and not ray_available():
        if args.address:
            raise ConfigError("--address needs Ray: pip install 'dgmbench[sweep]'")
        print("Ray is not installed (pip install 'dgmbench[sweep]'): running the sweep sequentially")
        use_ray = False
    counts = run_sweep(specs, Path(args.results_dir), use_ray, args.address, int(sweep.get("cpus_per_run", 1)),
                       int(sweep.get("max_retries", 3)), progress=not args.no_progress)
    print(f"sweep: {counts['done']} recorded, {counts['skipped']} already recorded, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of runs (Ray when installed, else sequentially)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("sweep_file", type=Path, metavar="SWEEP.toml")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. auto, or host:6379)")
    p.add_argument("--no-ray", action="store_true", help="run sequentially in this process")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--workdir", default=".dgmbench")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_sweep)
