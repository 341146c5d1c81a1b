from dgmbench.metrics.base import (  # noqa: F401
    METRICS,
    EvalContext,
    Metric,
    MetricValue,
    evaluate,
    register_metric,
)
