"""Bit-serial binary addition (Hinton, Neural Networks for Machine Learning, lecture 7c).

Each step reads one column of two binary numbers, least significant bit first,
and emits the sum bit of the column read `delay` steps earlier: the network
has `delay` steps to work out the carry. A sum of two n-bit numbers has n + 1
bits, so a sequence is n + 1 + delay steps long, the inputs zero after bit n
and the targets zero during the first `delay` steps.
"""

import numpy as np

from zoo._checks import check_non_negative_int

__all__ = ["addition_batch", "exact_match", "bits_to_int"]


def addition_batch(rng, batch_size, n_bits, delay=2):
    """Random sums of two `n_bits`-bit numbers.

    Returns:
        `(inputs (B, T, 2) float32, targets (B, T, 1) float32)` with
        T = n_bits + 1 + delay.
    """
    check_non_negative_int("delay", delay)
    steps = n_bits + 1 + delay
    operands = np.zeros((batch_size, steps, 2), np.float32)
    operands[:, :n_bits] = rng.integers(0, 2, size=(batch_size, n_bits, 2))
    sum_bits = np.zeros((batch_size, n_bits + 1), np.float32)
    carry = np.zeros(batch_size, np.int64)
    for column in range(n_bits + 1):  # the carry chain is sequential; the batch is not
        total = operands[:, column, 0].astype(np.int64) + operands[:, column, 1].astype(np.int64) + carry
        sum_bits[:, column], carry = total % 2, total // 2
    targets = np.zeros((batch_size, steps, 1), np.float32)
    targets[:, delay:, 0] = sum_bits
    return operands, targets


def exact_match(predicted_bits, targets):
    """Fraction of sequences whose every output bit is right."""
    return float(np.mean(np.all(np.asarray(predicted_bits) == np.asarray(targets), axis=(1, 2))))


def bits_to_int(bits):
    """Little-endian 0/1 sequence -> Python int (any length)."""
    return sum(int(b) << i for i, b in enumerate(bits))
