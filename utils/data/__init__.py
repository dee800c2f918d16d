"""The data: `datasets.py`, the datasets, one entry each (torch-free); `sources.py`, a dataset read from
--data-dir in any accepted layout, subsets; `loaders.py`, the training and evaluation loaders."""
