"""The package layout is part of the contract: models by family, metrics in metrics/,
and no import from models into metrics (which made the two import each other in a circle)."""
from __future__ import annotations

import ast
from pathlib import Path

import dgmbench
from dgmbench.metrics import METRICS
from dgmbench.models import MODELS

PACKAGE = Path(dgmbench.__file__).resolve().parent
FAMILIES = {"autoregressive", "energy", "latent", "flows", "gans"}


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_every_model_lives_in_a_family_folder():
    for name, cls in MODELS.items():
        parts = cls.__module__.split(".")
        assert parts[:2] == ["dgmbench", "models"] and parts[2] in FAMILIES and len(parts) == 4, (
            f"model {name!r} is defined in {cls.__module__}; expected dgmbench.models.<family>.<model>"
        )


def test_models_never_import_metrics():
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in (PACKAGE / "models").rglob("*.py")
        for module in _imported_modules(path)
        if module == "dgmbench.metrics" or module.startswith("dgmbench.metrics.")
    ]
    assert not offenders, offenders


def test_every_metric_is_defined_in_the_metrics_package():
    for name, metric in METRICS.items():
        assert type(metric).__module__.startswith("dgmbench.metrics."), (
            f"metric {name!r} is defined in {type(metric).__module__}, outside dgmbench/metrics/"
        )


def test_tests_mirror_the_model_families():
    tests = Path(__file__).resolve().parent
    for name, cls in MODELS.items():
        family = cls.__module__.split(".")[2]
        assert (tests / "models" / family).is_dir(), f"no tests/models/{family}/ for {name}"
