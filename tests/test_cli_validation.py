"""Issue 8 item 3: every CLI value is validated before any work starts -- one line on
stderr saying what is wrong and what is valid, exit status 2, no data loaded, no file
written (no sample PNG, no run directory, no record)."""
from __future__ import annotations

import re

import pytest

import dgmbench.runner
from dgmbench.cli import main
from dgmbench.validation import ConfigError, check_options


def refuse_to_load(*args, **kwargs):
    raise AssertionError("data was loaded before the options were checked")


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if anything gets as far as loading data."""
    monkeypatch.setattr(dgmbench.runner, "load_dataset", refuse_to_load)


def run_cli(tmp_path, capsys, *args) -> tuple[int, str]:
    code = main(["run", *args, "--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work"),
                 "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.err


BAD = [
    (["--model", "nade", "-o", "hidden=abc"], r'-o hidden="abc" has the wrong type: hidden must be an integer'),
    (["--model", "nade", "-o", "hidden=0"], r"-o hidden=0 is out of range: hidden must be >= 1"),
    (["--model", "nade", "-o", "hidden=2.5"], r"hidden must be an integer"),
    (["--model", "deepnade", "-o", "hidden_sizes=[10, 0]"], r"hidden_sizes must be >= 1"),
    (["--model", "vae", "-t", "lr=fast"], r'-t lr="fast" has the wrong type: lr must be a number'),
    (["--model", "vae", "-t", "lr=0"], r"lr must be > 0"),
    (["--model", "vae", "-t", "batch_size=0"], r"-t batch_size=0 is out of range: batch_size must be >= 1"),
    (["--model", "vae", "--batch-size", "0"], r"batch_size must be >= 1"),
    (["--model", "vae", "-t", "epochs=0"], r"-t epochs=0 is out of range: epochs must be >= 1"),
    (["--model", "vae", "-t", "epochs=-1"], r"epochs must be >= 1"),
    (["--model", "vae", "--epochs", "0"], r"epochs must be >= 1"),
    (["--model", "vae", "-t", "patience=0"], r"patience must be >= 1"),
    (["--model", "vae", "-t", "epoch=3"], r"training has no option -t epoch\. Did you mean 'epochs'"),
    (["--model", "vae", "-e", "iwae_k=0"], r"-e iwae_k=0 is out of range: iwae_k must be an integer >= 1"),
    (["--model", "vae", "-e", "iwae_kk=5"], r"unknown evaluation setting -e iwae_kk\. Did you mean 'iwae_k'"),
    (["--model", "vae", "-e", 'metrics=["elbo_iwea"]'], r"unknown metric 'elbo_iwea'"),
    (["--model", "vae", "--seed", "-1"], r"--seed -1 is not valid"),
    (["--model", "vae", "--device", "gpu0"], r"--device 'gpu0' is not a device"),
    (["--model", "vae", "--dataset", "digits/grey"], r"valid variants: binary"),
    (["--model", "vae", "--resume-from", "0123abcd"], r"--resume-from '0123abcd': no run directory"),
    # the quick suite checks every model's options before the first one trains
    (["--models", "fvsbn,nade", "-t", "epochs=0"], r"epochs must be >= 1"),
    (["--models", "fvsbn,nade", "-e", "iwae_kk=1"], r"unknown evaluation setting"),
]
QUICK_SUITE = "--models"  # it reads the embedded digits' shape to list its models, nothing else


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_values_fail_in_one_line_before_any_work(tmp_path, capsys, monkeypatch, args, message):
    if QUICK_SUITE not in args:
        monkeypatch.setattr(dgmbench.runner, "load_dataset", refuse_to_load)
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(tmp_path, capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dgmbench: error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "files were written"


def test_a_malformed_config_names_the_file_and_the_line(tmp_path, capsys, no_data):
    config = tmp_path / "bad.toml"
    config.write_text('[run]\nmodel = "nade"\n[train]\nepochs = = 3\n')
    code, err = run_cli(tmp_path, capsys, "--config", str(config))
    assert code == 2 and err.count("\n") == 1
    assert str(config) in err and "line 4" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ('[run]\nmodle = "nade"\n', r"\[run\] has no key 'modle'; valid keys: dataset, device, model"),
        ('[trian]\nepochs = 3\n', r"unknown table or key 'trian'; valid tables: \[run\], \[model\], \[train\], \[eval\]"),
        ('[run]\nmodel = "nade"\n[train]\nepochs = 0\n', r"epochs must be >= 1"),
        ('[run]\nmodel = "nade"\n[eval]\niwae_kk = 0\n', r"unknown evaluation setting -e iwae_kk"),
    ],
)
def test_bad_config_contents_fail_in_one_line(tmp_path, capsys, no_data, text, message):
    config = tmp_path / "run.toml"
    config.write_text(text)
    code, err = run_cli(tmp_path, capsys, "--config", str(config))
    assert code == 2 and err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "results").exists() and not (tmp_path / "work").exists()


def test_missing_config_file_and_directory_are_one_line(tmp_path, capsys, no_data):
    for path in (tmp_path / "missing.toml", tmp_path):
        code, err = run_cli(tmp_path, capsys, "--config", str(path))
        assert code == 2 and err.count("\n") == 1 and str(path) in err


def test_a_model_that_cannot_be_built_is_one_line_and_writes_nothing(tmp_path, capsys):
    # a size the model's layers refuse (past the generic range check): no traceback, no files
    code, err = run_cli(tmp_path, capsys, "--model", "gated_pixelcnn", "--dataset", "digits/binary",
                        "-o", "first_kernel=100")
    assert code == 2 and err.count("\n") == 1
    assert "model 'gated_pixelcnn' cannot be built with -o first_kernel=100 on digits/binary: " in err
    assert "odd kernel" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "work").exists()


def test_types_come_from_the_config_annotations():
    from dataclasses import dataclass

    @dataclass
    class Config:
        width: int = 4
        rate: float = 0.5
        name: str = "a"
        sizes: tuple[int, ...] = (3, 2)
        cap: int | None = None
        offset: int = -1  # a negative default: no inferred range

    check_options(Config, {"width": 1, "rate": 1, "name": "b", "sizes": [1, 5], "cap": None, "offset": -7}, "-o", "m")
    for bad in ({"width": "x"}, {"width": 0}, {"rate": -0.1}, {"rate": float("nan")}, {"name": 3},
                {"sizes": [1, "a"]}, {"sizes": [0]}, {"cap": 1.5}, {"widht": 3}):
        with pytest.raises(ConfigError):
            check_options(Config, bad, "-o", "m")


# --- issue 8 item 3/F: every subcommand turns user errors into one line and exit status 2 -----
@pytest.mark.parametrize("argv, message", [
    (["leaderboard", "--results-dir", "{tmp}/nowhere"], "--results-dir {tmp}/nowhere is not a directory"),
    (["leaderboard", "--dataset", "digitz", "--results-dir", "{tmp}"], "unknown dataset 'digitz'"),
    (["human-study", "ingest", "--manifest", "{tmp}", "{tmp}/r.csv"], "is a directory"),
    (["human-study", "ingest", "--manifest", "{tmp}/m.csv", "{tmp}/r.csv"], "no such manifest CSV file"),
    (["run", "--model", "vae", "-t", "epochs"], "expected key=value, got 'epochs'"),
    (["run", "--modle", "vae"], "unrecognized arguments: --modle"),
    (["run", "--model", "vae", "--epochs", "ten"], "invalid int value: 'ten'"),
    (["bogus"], "invalid choice: 'bogus'"),
])
def test_subcommands_report_user_errors_in_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message.replace("{tmp}", str(tmp_path)) in err


def test_every_models_reference_and_quick_configuration_pass_the_checks():
    """The inferred ranges must never reject what a model itself uses (its paper defaults,
    its quick-suite overrides, its family's training defaults)."""
    import dataclasses

    from dgmbench.data.base import load_dataset
    from dgmbench.models.base import MODELS
    from dgmbench.validation import check_train_options

    for name, cls in MODELS.items():
        info = load_dataset(f"digits/{cls.quick_variant()}").info
        check_options(cls.Config, dataclasses.asdict(cls.Config()), "-o", name)
        quick = cls.quick_config(info)
        if quick is not None:
            check_options(cls.Config, quick, "-o", name)
            check_train_options({**cls.train_defaults, **cls.quick_train(info)})
        check_train_options(dict(cls.train_defaults))
