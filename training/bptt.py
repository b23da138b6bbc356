"""Truncated backpropagation through time over parallel character streams.

The text is cut into `batch_size` contiguous streams; update k reads chunk k of
every stream, so the state left by chunk k is the right starting state for
chunk k+1. Gradients stop at chunk boundaries (the state enters as a value);
the forward pass does not: the model keeps seeing unbroken text.
"""

import numpy as np

__all__ = ["as_streams", "chunk_count", "chunk", "epoch_offset"]


def as_streams(ids, batch_size, offset=0):
    """(N,) ids -> (batch_size, L) contiguous streams, starting at `offset`."""
    ids = ids[offset:]
    length = len(ids) // batch_size
    if length < 2:
        raise ValueError(f"{len(ids)} characters cannot fill {batch_size} streams of at least 2.")
    return ids[: length * batch_size].reshape(batch_size, length)


def chunk_count(streams, seq_len):
    """How many whole (input, target) chunks of `seq_len` the streams hold."""
    return (streams.shape[1] - 1) // seq_len


def chunk(streams, index, seq_len):
    """Chunk `index`: inputs (B, seq_len) and next-character targets (B, seq_len)."""
    start = index * seq_len
    return streams[:, start : start + seq_len], streams[:, start + 1 : start + 1 + seq_len]


def epoch_offset(seed, epoch, seq_len):
    """Where epoch `epoch` starts: shifted so chunk boundaries move between epochs."""
    return int(np.random.default_rng([seed, epoch]).integers(seq_len))
