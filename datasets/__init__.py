"""Datasets the pipeline knows: each a folder with its spec (dataset.yaml), its curated schema, and for a simulated
one its generator. datasets.spec reads a spec; it is the one module that knows which columns a dataset has."""
