"""dgmbench: benchmark and evaluation suite for deep generative models.

``dgmbench.load_results(results_dir)`` returns the results store as a tidy pandas
DataFrame (one row per record and metric; see :mod:`dgmbench.results_frame`).
"""

__version__ = "0.1.0"
__all__ = ["load_results"]


def __getattr__(name: str):
    # imported on first use, so that `import dgmbench` (every CLI call) does not load pandas
    if name == "load_results":
        from dgmbench.results_frame import load_results

        return load_results
    raise AttributeError(f"module 'dgmbench' has no attribute {name!r}")
