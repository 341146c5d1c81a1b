"""`dgmbench sweep`: the grid, skipping recorded runs, the same records with and without Ray,
and a worker killed mid-run (every run recorded exactly once)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgmbench.sweep import expand, read_sweep
from dgmbench.validation import ConfigError

SWEEP = """models = ["fvsbn", "bernoulli_mixture"]
seeds = [0, 1, 2]
quick = true
device = "cpu"
"""


def _metrics(results: Path) -> dict:
    out = {}
    for path in sorted((results / "records").glob("*.json")):
        record = json.loads(path.read_text())
        out.setdefault(record["run_key"], []).append({m["name"]: m["value"] for m in record["metrics"]})
    return out


def _sweep(tmp_path: Path, *extra: str, results: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        [sys.executable, "-m", "dgmbench.cli", "sweep", str(tmp_path / "s.toml"), "--results-dir", results,
         "--workdir", str(tmp_path / "work"), "--no-progress", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_grid_expands_option_lists_and_per_model_tables(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('models = ["nade", "fvsbn"]\nseeds = [0, 1]\nquick = true\n'
                    '[model_options.nade]\nhidden = [4, 8]\n[train_options]\nepochs = [1, 2]\n')
    specs = expand(read_sweep(path), str(tmp_path / "r"), str(tmp_path / "w"))
    # nade: 2 hidden x 2 epochs x 2 seeds; fvsbn: 2 epochs x 2 seeds
    assert len(specs) == 8 + 4
    assert {s.model_options.get("hidden") for s in specs if s.model == "nade"} == {4, 8}
    assert all("hidden" not in s.model_options for s in specs if s.model == "fvsbn")


def test_a_variant_with_its_own_datasets_runs_only_on_those(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('models = ["nade", "fvsbn"]\ndatasets = ["digits/binary"]\n'
                    '[[variants]]\nmodel = "nade"\ndatasets = ["binarized_mnist/fixed"]\n'
                    '[[variants]]\nmodel = "fvsbn"\n')
    specs = expand(read_sweep(path), str(tmp_path / "r"), str(tmp_path / "w"))
    assert [(s.model, s.dataset) for s in specs] == [
        ("nade", "digits/binary"), ("fvsbn", "digits/binary"),
        ("nade", "binarized_mnist/fixed"),  # its own datasets, not the sweep's
        ("fvsbn", "digits/binary"),  # no datasets of its own: the sweep's
    ]


def test_the_committed_gan_mnist_sweep_is_the_planned_grid():
    path = Path(__file__).resolve().parents[1] / "sweeps" / "gans_mnist.toml"
    specs = expand(read_sweep(path), "results", ".dgmbench")
    assert sorted((s.model, s.dataset) for s in specs) == sorted(
        [(m, "mnist/dequantized") for m in ("dcgan", "wgan_gp", "lsgan", "cgan", "infogan")]
        + [(m, "fashion_mnist/dequantized") for m in ("dcgan", "wgan_gp")]
        + [("wgan_gp", "mnist/dequantized"), ("wgan_gp", "fashion_mnist/dequantized")])  # 5 epochs
    assert sorted(s.train_options["epochs"] for s in specs) == [1] * 7 + [5, 5]
    assert all(s.model_options["base_channels"] == 16 for s in specs)
    assert all(s.eval_options["metrics"] == ["sample_quality_fidelity", "prdc", "categorical_code_accuracy"]
               for s in specs)


def test_extends_merges_tables_and_replaces_lists(tmp_path):
    (tmp_path / "base.toml").write_text(
        'models = ["nade", "fvsbn"]\nseeds = [0, 1]\nquick = true\n'
        '[model_options.nade]\nhidden = 8\n[train_options]\nepochs = 1\nbatch_size = 7\n'
        '[[variants]]\nmodel = "fvsbn"\ndatasets = ["binarized_mnist/fixed"]\n')
    (tmp_path / "long.toml").write_text(
        'extends = "base.toml"\nseeds = [3]\nvariants = []\n[train_options]\nepochs = 4\n')
    specs = expand(read_sweep(tmp_path / "long.toml"), str(tmp_path / "r"), str(tmp_path / "w"))
    assert sorted(s.model for s in specs) == ["fvsbn", "nade"]  # the base's variant dropped
    assert {s.seed for s in specs} == {3}  # lists replace
    assert all(s.train_options == {"epochs": 4, "batch_size": 7} for s in specs)  # tables merge
    assert [s.model_options for s in specs if s.model == "nade"] == [{"hidden": 8}]


def test_extends_names_a_missing_file_or_a_loop_in_one_line(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nmodels = ["nade"]\n')
    with pytest.raises(ConfigError, match="b.toml, which does not exist"):
        read_sweep(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="loops back on itself"):
        read_sweep(tmp_path / "a.toml")


def test_the_committed_long_sweeps_differ_from_their_base_only_in_length():
    sweeps = Path(__file__).resolve().parents[1] / "sweeps"

    def grid(name):
        return expand(read_sweep(sweeps / name), "results", ".dgmbench")

    def same_but_length(spec):
        train = {k: v for k, v in spec.train_options.items() if k not in ("epochs", "patience")}
        # (not the dataset: the long GAN sweep adds Fashion-MNIST for every model)
        return spec.model, sorted(spec.model_options.items()), sorted(train.items()), sorted(spec.eval_options.items())

    for long, base in (("gans_mnist_long.toml", "gans_mnist.toml"), ("flows_mnist_long.toml", "flows_mnist.toml"),
                       ("latent_mnist_long.toml", "latent_mnist.toml"), ("latent_mnist_k50.toml", "latent_mnist.toml")):
        base_runs = {repr(same_but_length(s)) for s in grid(base)}
        long_specs = grid(long)
        assert long_specs and all(repr(same_but_length(s)) in base_runs for s in long_specs), long
        base_epochs = max(s.train_options["epochs"] for s in grid(base))
        assert min(s.train_options["epochs"] for s in long_specs) > base_epochs, long


def test_a_bad_sweep_file_fails_with_one_line(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('models = ["nade"]\nsedes = [0]\n')
    with pytest.raises(ConfigError, match="unknown key 'sedes'; valid keys"):
        read_sweep(path)
    path.write_text('models = ["nade"]\n[model_options]\nhiden = [3]\n')
    with pytest.raises(ConfigError, match="hiden"):
        expand(read_sweep(path), str(tmp_path / "r"), str(tmp_path / "w"))


def test_ray_sweep_with_a_killed_worker_records_every_run_once_and_matches_sequential(tmp_path):
    pytest.importorskip("ray")
    (tmp_path / "s.toml").write_text(SWEEP)
    proc = _sweep(tmp_path, results=str(tmp_path / "ray"))
    killed, deadline = None, time.time() + 240
    while killed is None and proc.poll() is None and time.time() < deadline:
        for pid in os.listdir("/proc"):  # a Ray worker titles itself "ray::<task>" while it runs one
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="ignore")
            except OSError:
                continue
            if title.startswith("ray::dgmbench:") or title.startswith("ray::execute"):
                os.kill(int(pid), signal.SIGKILL)
                killed = title.split("\0")[0]
                break
        time.sleep(0.2)
    output = proc.communicate(timeout=600)[0]
    assert killed is not None, f"no Ray task process was seen running:\n{output}"
    assert proc.returncode == 0, output
    ray_metrics = _metrics(tmp_path / "ray")
    assert len(ray_metrics) == 6 and all(len(v) == 1 for v in ray_metrics.values()), output

    sequential = _sweep(tmp_path, "--no-ray", results=str(tmp_path / "seq"))
    output = sequential.communicate(timeout=600)[0]
    assert sequential.returncode == 0, output
    assert _metrics(tmp_path / "seq") == ray_metrics

    rerun = _sweep(tmp_path, "--no-ray", results=str(tmp_path / "seq"))
    output = rerun.communicate(timeout=600)[0]
    assert "6 already recorded" in output and len(list((tmp_path / "seq" / "records").glob("*.json"))) == 6
