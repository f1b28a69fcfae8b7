"""The sources layer: shard files (``.npy``, ``.npz``) read with random access.

The plan's own sources (`stream`, `from_iterable`, `from_arrays`) are
descriptions in `combinators.plan.sources`; the sources here read files.
"""
