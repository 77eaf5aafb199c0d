"""Datasets as uint8 arrays, from a local cache, Keras's download or offline sources."""

from sweeps.data.sources import (
    CACHE_ENV,
    DATASETS,
    Dataset,
    DataUnavailable,
    default_cache_dir,
    load_dataset,
)

__all__ = ["CACHE_ENV", "DATASETS", "Dataset", "DataUnavailable", "default_cache_dir", "load_dataset"]
