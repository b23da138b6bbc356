"""Tagging where a word's tag is decided by later words: what bidirectional models are for.

Words 0 .. C·K − 1 are unambiguous: word w has tag w // K (C tags, K words
each). Words C·K .. C·K + A − 1 are ambiguous (think "read" before "book" or
before "yesterday"): each takes the tag of the nearest unambiguous word to its
right. Each position is ambiguous with probability p, except the last, which
is always unambiguous so every tag is defined. Positions are independent.

Ceiling of a one-directional (left-to-right) tagger. At an ambiguous position
t the tag is the tag of a later unambiguous word, which is uniform over the C
tags and independent of words 0..t, so no causal tagger beats 1/C there in
expectation; unambiguous positions can all be right. With L positions the
expected accuracy is at most

    1 − p·(L − 1)/L·(1 − 1/C)          (L = 20, p = 0.5, C = 4: 0.64375)

while a bidirectional tagger can reach 100%.
"""

import numpy as np

from zoo._checks import check_number

__all__ = ["tagging_batch", "causal_accuracy_ceiling", "vocabulary_size"]


def vocabulary_size(num_tags=4, words_per_tag=5, ambiguous_words=5):
    return num_tags * words_per_tag + ambiguous_words


def tagging_batch(rng, batch_size, length=20, p_ambiguous=0.5, num_tags=4, words_per_tag=5, ambiguous_words=5):
    """Returns `(words (B, L) int32, tags (B, L) int32)`."""
    check_number("p_ambiguous", p_ambiguous, 0, 1, high_open=True)
    plain = rng.integers(0, num_tags * words_per_tag, size=(batch_size, length))
    ambiguous = rng.random((batch_size, length)) < p_ambiguous
    ambiguous[:, -1] = False
    words = np.where(ambiguous, num_tags * words_per_tag + rng.integers(0, ambiguous_words, size=plain.shape), plain)
    tags = plain // words_per_tag
    for t in range(length - 2, -1, -1):  # right to left: an ambiguous word copies its right neighbour's tag
        tags[:, t] = np.where(ambiguous[:, t], tags[:, t + 1], tags[:, t])
    return words.astype(np.int32), tags.astype(np.int32)


def causal_accuracy_ceiling(length=20, p_ambiguous=0.5, num_tags=4):
    """The expected token accuracy no left-to-right tagger can exceed (see the module docstring)."""
    return 1.0 - p_ambiguous * (length - 1) / length * (1.0 - 1.0 / num_tags)
