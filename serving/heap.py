"""Keeping the loaded models out of the cyclic garbage collector's full passes.

A loaded SavedModel leaves a great many Python objects (its function graphs,
their ops and tensors, the restored trackables) that live as long as the
version is served. CPython's full collection walks every one of them while it
holds the interpreter lock, so under load each one stalls every request thread
and the generation lane at once (`benchmarks/serving_load.py` measures the
server with this on). `gc.freeze` moves what is alive now into a permanent
generation the collector skips; reference counting still frees those objects,
only their reference cycles wait for the next `settle`.

The server settles after the models first load and after each change of the
loaded versions (thawing first, so an unloaded version's cycles are collected),
and thaws when it stops, so a process that embeds the server gets its
collector back as it was.
"""

import gc

__all__ = ["settle", "thaw"]


def settle():
    """Collects everything, then freezes what is left alive (the loaded models)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def thaw():
    """Hands every frozen object back to the collector."""
    gc.unfreeze()
