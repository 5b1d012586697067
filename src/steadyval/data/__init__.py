"""Ingest: DATA -> Dataset (records, uint8 image cache, properties, hashes)."""

from steadyval.data.dataset import Dataset, UnreadableFile
from steadyval.data.ingest import load_dataset
from steadyval.data.split import stratified_group_split

__all__ = ["Dataset", "UnreadableFile", "load_dataset", "stratified_group_split"]
