from dgmbench.data.base import (  # noqa: F401
    DATASETS,
    SPLITS,
    DataInfo,
    Dataset,
    DatasetSpec,
    load_dataset,
    register_dataset,
)
