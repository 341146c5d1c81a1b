"""The results store never loses or half-writes a record, also with concurrent writers."""
from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from dgmbench.results import DuplicateRecordError, ResultsStore


def record(key: str, seed: int = 0) -> dict:
    return {"run_key": key, "model": "m", "board": "d/v", "seed": seed, "payload": "x" * 10_000}


def _writer(root, prefix, count, queue):
    store = ResultsStore(root)
    outcomes = []
    for i in range(count):
        try:
            store.append(record(f"{prefix}{i:04d}" + "0" * 60))
            outcomes.append("ok")
        except DuplicateRecordError:
            outcomes.append("dup")
    queue.put(outcomes)


def run_writers(root, prefixes, count=25):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(root, p, count, queue)) for p in prefixes]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return results


def test_two_concurrent_writers_lose_nothing(tmp_path):
    run_writers(tmp_path, ["a", "b"])
    records = ResultsStore(tmp_path).load()
    assert len(records) == 50
    assert all(len(r["payload"]) == 10_000 for r in records)


def test_concurrent_writers_of_the_same_run_write_it_once(tmp_path):
    outcomes = run_writers(tmp_path, ["same", "same"])
    assert sum(o.count("ok") for o in outcomes) == 25
    assert len(ResultsStore(tmp_path).load()) == 25


def test_duplicate_refused_unless_forced(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(record("k" * 64))
    with pytest.raises(DuplicateRecordError, match="--force"):
        store.append(record("k" * 64))
    store.append(record("k" * 64), force=True)
    assert len(store.load()) == 2


def test_leftover_temporary_file_from_a_kill_is_ignored(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(record("k" * 64))
    (store.records_dir / ".tmp-abc.json").write_text('{"half": ')  # killed mid-write
    assert len(store.load()) == 1


def test_a_corrupt_record_is_reported_not_dropped(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(record("k" * 64))
    path = next(store.records_dir.glob("*.json"))
    path.write_text(json.dumps({"ok": 1})[:-2])
    with pytest.raises(ValueError, match="corrupt result record"):
        store.load()


# --- issue 8 item 7: records are strict JSON ------------------------------------------------------
def strict_loads(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null(tmp_path):
    import numpy as np
    import torch

    store = ResultsStore(tmp_path)
    rec = record("f" * 64)
    rec.update(metrics=[{"name": "nll", "value": float("nan"), "stderr": float("inf")}],
               history=[{"epoch": 1, "valid": float("nan")}, {"epoch": 2, "valid": -float("inf")}],
               scalars=(np.float64("nan"), np.float32(2.5), torch.tensor(float("nan")), 3, True, "NaN"))
    path = store.append(rec)
    loaded = strict_loads(path.read_text())
    assert loaded["metrics"][0]["value"] is None and loaded["metrics"][0]["stderr"] is None
    assert [h["valid"] for h in loaded["history"]] == [None, None]
    assert loaded["scalars"] == [None, 2.5, None, 3, True, "NaN"]


def test_old_records_with_nan_still_load(tmp_path):
    store = ResultsStore(tmp_path)
    store.records_dir.mkdir(parents=True)
    (store.records_dir / "old.json").write_text('{"run_key": "k", "history": [{"valid": NaN}]}\n')
    (loaded,) = store.load()
    assert loaded["history"][0]["valid"] != loaded["history"][0]["valid"]  # NaN


def test_every_committed_record_is_strict_json():
    from pathlib import Path

    records = sorted((Path(__file__).parents[1] / "results" / "records").glob("*.json"))
    assert records, "no committed records found"
    for path in records:
        strict_loads(path.read_text())
