"""The results store: one JSON file per run under ``<results>/records/``.

Why one file per record: a record is written to a temporary file, fsynced, and then
hard-linked to its final name, which fails if that name exists. So two concurrent
writers never interleave, a kill at any moment leaves either no record or a whole one
(never half of one), an existing record is never overwritten, and committed results
merge in git without conflicts. A run's record name contains its run key (a hash of
model, data, configs, seed and evaluation settings), so a resumed or repeated run cannot
add a second record for the same configuration unless asked to (``force``).

Interim records (``<results>/interim/``) hold the state of a run paused at an invocation's
time limit (``--stop-after-hours``): the best checkpoint so far evaluated, the epochs done
and planned, and the command that continues it. They never enter ``records/`` (so neither
leaderboards nor ``dgmbench check`` mix them with finished runs); each is replaced
atomically by the next pause of the same run and removed once its final record is written.

Records are strict JSON (RFC 8259), readable by every JSON parser: a non-finite number
(NaN, +-inf, e.g. the validation score of a model without one) is written as null. Older
records with bare NaN/Infinity still load.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORDS = "records"
INTERIM = "interim"


class DuplicateRecordError(FileExistsError):
    pass


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def finite_or_null(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, +-inf; also numpy/torch scalars) replaced by
    None, recursively through dicts, lists and tuples."""
    if isinstance(obj, dict):
        return {key: finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(value) for value in obj]
    if not isinstance(obj, (bool, int, str)) and hasattr(obj, "item") and getattr(obj, "shape", None) == ():
        obj = obj.item()  # a numpy or torch scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def record_json(record: dict) -> str:
    """The text of a record file: strict JSON (no NaN/Infinity), sorted keys, one space indent."""
    return json.dumps(finite_or_null(record), indent=1, sort_keys=True, default=str, allow_nan=False) + "\n"


@dataclass
class ResultsStore:
    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    @property
    def records_dir(self) -> Path:
        return self.root / RECORDS

    def record_path(self, run_key: str, model: str, board: str, seed: int, attempt: int = 0) -> Path:
        stem = f"{model}__{board.replace('/', '__')}__seed{seed}__{run_key[:12]}"
        return self.records_dir / (stem + (f"__{attempt}" if attempt else "") + ".json")

    def existing(self, run_key: str) -> list[Path]:
        if not self.records_dir.exists():
            return []
        return sorted(self.records_dir.glob(f"*__{run_key[:12]}*.json"))

    def append(self, record: dict, force: bool = False) -> Path:
        """Write `record` atomically under a new name; refuse a second record for the same
        run key unless `force` (then it gets the next attempt number)."""
        self.records_dir.mkdir(parents=True, exist_ok=True)
        key, model, board, seed = record["run_key"], record["model"], record["board"], record["seed"]
        if self.existing(key) and not force:
            raise DuplicateRecordError(
                f"a record for this exact run already exists: {self.existing(key)[0]} "
                "(rerun with --force to record a repeat)"
            )
        text = record_json(record)
        fd, tmp = tempfile.mkstemp(dir=self.records_dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            for attempt in range(0, 1000):
                target = self.record_path(key, model, board, seed, attempt)
                try:
                    os.link(tmp, target)  # atomic and exclusive: fails if target exists
                except FileExistsError:
                    if not force:
                        raise DuplicateRecordError(f"a record already exists at {target}") from None
                    continue
                _fsync_dir(self.records_dir)
                self.drop_interim(key)  # the finished run supersedes its paused state
                return target
            raise DuplicateRecordError(f"too many repeats of run {key[:12]}")
        finally:
            os.unlink(tmp)

    @property
    def interim_dir(self) -> Path:
        return self.root / INTERIM

    def interim(self, run_key: str) -> list[Path]:
        if not self.interim_dir.exists():
            return []
        return sorted(self.interim_dir.glob(f"*__{run_key[:12]}.json"))

    def put_interim(self, record: dict) -> Path:
        """Write (or atomically replace) the interim record of a paused run."""
        self.interim_dir.mkdir(parents=True, exist_ok=True)
        target = self.interim_dir / self.record_path(record["run_key"], record["model"], record["board"],
                                                     record["seed"]).name
        fd, tmp = tempfile.mkstemp(dir=self.interim_dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(record_json(record))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        _fsync_dir(self.interim_dir)
        return target

    def drop_interim(self, run_key: str) -> None:
        for path in self.interim(run_key):
            path.unlink(missing_ok=True)

    def load_interim(self) -> list[dict]:
        records = []
        for path in sorted(self.interim_dir.glob("*.json")) if self.interim_dir.exists() else []:
            if not path.name.startswith(".tmp-"):
                records.append(self.load_one(path))
        return records

    def load_one(self, path: Path) -> dict:
        record = json.loads(Path(path).read_text())
        record["_path"] = str(path)
        return record

    def load(self) -> list[dict]:
        """All records; a file that is not valid JSON is reported, never silently dropped."""
        records = []
        if not self.records_dir.exists():
            return records
        for path in sorted(self.records_dir.glob("*.json")):
            if path.name.startswith(".tmp-"):
                continue
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"corrupt result record {path}: {err}") from err
            record["_path"] = str(path)
            records.append(record)
        return records


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
