"""Extraction: a dataset and models in, one resumable HDF5 store per model out.

Import the part you need (`job`, `decode`, `perturb`, `ranks`, `distributed`, `importers`);
this package imports none of them, so the CLI can check options without loading torch.
"""
