from dgmbench.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
from dgmbench.train.trainer import NonFiniteLossError, TrainSummary, fit  # noqa: F401
