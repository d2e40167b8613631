"""Extraction: a dataset and models in, one resumable HDF5 store per model out.

`request` checks a request once, without torch, into the frozen `CheckedRequest` that
the rest trusts; `run` runs it in this process (`job`: the embed loop, with `loader`,
`prepare`, `texts` and `finish`) or as one rank of several (`ranks`, `distributed`).
`decode` and `perturb` are the image paths, `importers` reads embeddings made elsewhere.
This package imports none of them, so the CLI can check options without loading torch.
"""
