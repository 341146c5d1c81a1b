"""Issue 8 item 4: the same run started twice at once -- one trains and records it, the
other waits for it and then reports the record; never a DuplicateRecordError traceback."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dgmbench.runner as runner
from dgmbench.results import ResultsStore
from dgmbench.runner import RunSpec, run, run_lock

EVAL = {"metrics": ["exact_likelihood"]}


def spec(tmp_path) -> RunSpec:
    return RunSpec(model="fvsbn", dataset="digits/binary", train_options={"epochs": 1}, eval_options=EVAL,
                   results_dir=str(tmp_path / "results"), workdir=str(tmp_path / "work"), progress=False)


def test_a_second_identical_run_waits_for_the_first_and_reports_its_record(tmp_path, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real_fit = runner.fit
    calls = []

    def held_fit(*args, **kwargs):  # the first run trains until the test lets it go on
        calls.append(1)
        started.set()
        assert release.wait(60)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(runner, "fit", held_fit)
    logs = {"first": [], "second": []}
    results, errors = {}, []

    def go(name):
        try:
            results[name] = run(spec(tmp_path), log=logs[name].append)
        except BaseException as err:  # noqa: BLE001 -- reported by the assertion below
            errors.append(err)

    first = threading.Thread(target=go, args=("first",))
    first.start()
    assert started.wait(60)
    second = threading.Thread(target=go, args=("second",))
    second.start()
    deadline = time.time() + 60
    while not any("already running" in line for line in logs["second"]) and time.time() < deadline:
        time.sleep(0.05)
    assert any("already running in another process" in line and "waiting" in line for line in logs["second"])
    assert second.is_alive()  # it waits, it does not train
    release.set()
    first.join(60)
    second.join(60)
    assert not errors, errors
    assert len(calls) == 1  # trained once
    records = ResultsStore(tmp_path / "results").load()
    assert len(records) == 1
    assert any(line.startswith("already recorded:") for line in logs["second"])
    assert results["second"]["run_key"] == results["first"]["run_key"] == records[0]["run_key"]


def test_the_lock_is_exclusive_and_released(tmp_path):
    run_dir = tmp_path / "run"
    messages = []
    with run_lock(run_dir, messages.append):
        waiter_done = threading.Event()

        def waiter():
            with run_lock(run_dir, messages.append):
                waiter_done.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)
        assert not waiter_done.is_set()
    thread.join(10)
    assert waiter_done.is_set() and len(messages) == 1


@pytest.mark.slow
def test_the_same_command_started_twice_as_processes(tmp_path):
    """Two real `dgmbench run` processes with the same arguments: both exit 0, one record,
    no traceback; the second started while the first trains."""
    args = [sys.executable, "-m", "dgmbench.cli", "run", "--model", "nade", "--dataset", "digits/binary",
            "--epochs", "60", "-o", "hidden=8", "-t", "patience=none", "--no-progress",
            "-e", 'metrics=["exact_likelihood"]', "--results-dir", str(tmp_path / "results"),
            "--workdir", str(tmp_path / "work")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.time() + 120
    while not list(Path(tmp_path / "work").glob("runs/*/last.pt")) and time.time() < deadline:
        time.sleep(0.1)
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out_first, _ = first.communicate(timeout=300)
    out_second, _ = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, out_first + out_second
    assert "Traceback" not in out_first + out_second
    assert len(ResultsStore(tmp_path / "results").load()) == 1
    assert "already recorded" in out_second
