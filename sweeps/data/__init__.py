"""Datasets as uint8 arrays, from a local cache, Keras's download or offline sources."""

from sweeps.data.sources import (
    CACHE_ENV,
    DATASETS,
    DataError,
    Dataset,
    DataUnavailable,
    default_cache_dir,
    give,
    is_given,
    is_path,
    load_dataset,
)

__all__ = ["CACHE_ENV", "DATASETS", "DataError", "Dataset", "DataUnavailable", "default_cache_dir", "give", "is_given", "is_path",
           "load_dataset"]
