"""Score a saved checkpoint under a recorded run's evaluation protocol.

    python scripts/evaluate_checkpoint.py RECORD.json CHECKPOINT.pt [-e KEY=VALUE ...]

The record gives the model, its configuration, the board, the evaluation settings and the
seed; the checkpoint (``best.pt`` or ``last.pt`` of the run's directory under ``--workdir``,
default ``.dgmbench/runs/``) gives the weights. The evaluation is the runner's own
(:func:`dgmbench.runner.evaluate_run`), so scoring the checkpoint the record evaluated
reproduces the record's numbers, and scoring another one (the last epoch instead of the
best-validation one) measures what the checkpoint choice changes. ``-e`` overrides a setting
(e.g. ``-e parzen_samples=1000`` for a quick look; the output then says so). Prints one line
per metric; writes nothing (a record comes only from a run).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dgmbench.cli import parse_option
from dgmbench.data.base import load_dataset
from dgmbench.models.base import MODELS
from dgmbench.runner import evaluate_run, resolve_device
from dgmbench.train.checkpoint import load_checkpoint
from dgmbench.validation import ConfigError, build_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="a run record (results/records/*.json)")
    parser.add_argument("checkpoint", type=Path, help="best.pt or last.pt of that run")
    parser.add_argument("-e", "--eval-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", default=".dgmbench", help="caches (reference statistics)")
    args = parser.parse_args(argv)
    try:
        record = json.loads(args.record.read_text())
        cls = MODELS.get(record["model"])
        dataset = load_dataset(record["board"])
        config = build_config(cls.Config, record["model_config"], "-o", f"model {record['model']!r}")
        model = cls(config, dataset.info)
        model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
        settings = {**record["eval_settings"], **dict(args.eval_option)}
        device = resolve_device(args.device)
        values = evaluate_run(model.to(device), dataset, settings, device, record["seed"],
                              record.get("suite") == "quick", args.workdir)
    except (OSError, KeyError, ValueError, RuntimeError, ConfigError) as err:  # RuntimeError: weights of another model
        print(f"evaluate_checkpoint: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    overridden = f" (settings changed: {', '.join(f'{k}={v}' for k, v in args.eval_option)})" if args.eval_option else ""
    print(f"{args.checkpoint}: {record['model']} on {record['board']}, seed {record['seed']}{overridden}")
    for value in values:
        stderr = f" +- {value.stderr:.4g}" if value.stderr is not None else ""
        print(f"  {value.name} = {value.value:.6g}{stderr} {value.unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
