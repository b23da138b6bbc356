"""The copying-memory task (Hochreiter & Schmidhuber 1997, experiment 2; the form of Arjovsky, Shah & Bengio
2016 and of expRNN).

A sequence of T + 20 tokens: 10 symbols drawn from 8 categories (ids 1..8), T − 1 blanks (0), the
delimiter (9), then 10 more blanks during which the net must output the 10 symbols in order. The target is
blank (0) everywhere else. A net that outputs blanks and then guesses uniformly scores
10·ln 8 / (T + 20) nats per step, the baseline every memoryless solution sits at.
"""

import math

import numpy as np

from zoo._checks import check_positive_int

__all__ = ["copying_batch", "baseline_loss", "BLANK", "DELIMITER", "CATEGORIES", "SYMBOLS", "VOCABULARY"]

BLANK, DELIMITER = 0, 9
CATEGORIES = 8  # symbol ids 1..8
SYMBOLS = 10  # how many to remember
VOCABULARY = DELIMITER + 1  # input ids 0..9; outputs are 0..8


def baseline_loss(blanks):
    """Cross-entropy per step, in nats, of the memoryless answer: blanks, then uniform over the categories."""
    return SYMBOLS * math.log(CATEGORIES) / (blanks + 2 * SYMBOLS)


def copying_batch(rng, batch_size, blanks):
    """Returns `(inputs (B, T + 20) int32, targets (B, T + 20) int32)` with T = `blanks`.

    Raises:
        ValueError: `blanks` or `batch_size` is not a positive integer.
    """
    check_positive_int("blanks", blanks)
    check_positive_int("batch_size", batch_size)
    steps = blanks + 2 * SYMBOLS
    symbols = rng.integers(1, CATEGORIES + 1, size=(batch_size, SYMBOLS))
    inputs = np.full((batch_size, steps), BLANK, np.int32)
    inputs[:, :SYMBOLS] = symbols
    inputs[:, blanks + SYMBOLS - 1] = DELIMITER  # the T-th blank position: recall starts on the next step
    targets = np.full((batch_size, steps), BLANK, np.int32)
    targets[:, -SYMBOLS:] = symbols
    return inputs, targets
