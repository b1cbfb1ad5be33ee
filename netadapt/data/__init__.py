"""Datasets without torchvision: IDX and image folders in, prepared uint8 tensors out."""

from netadapt.data.datasets import DATASETS, RawDataset, read_dataset
from netadapt.data.prepared import SPLITS, DataInfo, Split, load_info, load_split, prepare_data

__all__ = ["DATASETS", "RawDataset", "read_dataset", "SPLITS", "DataInfo", "Split",
           "load_info", "load_split", "prepare_data"]
