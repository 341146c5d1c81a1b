from dgmbench.models.base import (  # noqa: F401
    MODELS,
    Bound,
    EnergyBased,
    ExactLikelihood,
    GenerativeModel,
    Implicit,
    Invertible,
    LowerBound,
    TrainConfig,
    build_model,
    register_model,
)
