"""Addition as string pairs, "123+456" → "579" (the Keras addition example's task).

Each operand has 1 to `digits` digits (the count drawn uniformly, then the
digits), pairs are unique, questions are padded with spaces to 2·digits + 1
characters and answers to digits + 1. With `reverse=True` the question is
reversed, so the least significant digits are read last (closest to the
decoder), as in the Keras example and Sutskever et al. 2014.

`train_test_pairs` holds out pairs that training never shows in either
order: with "12+34" in training neither "12+34" nor "34+12" is held out, so
a held-out answer cannot be recalled from a commuted twin.
"""

import numpy as np

__all__ = ["VOCABULARY", "addition_pairs", "train_test_pairs", "operand_digits", "encode", "decode"]

VOCABULARY = "0123456789+ "
_INDEX = {ch: i for i, ch in enumerate(VOCABULARY)}


def _operands(rng, count, digits):
    lengths = rng.integers(1, digits + 1, size=count)
    return (rng.random(count) * 10.0**lengths).astype(np.int64)


def _check_count(count, available, what):
    if count > available:
        raise ValueError(f"Only {available} distinct {what} exist. Received: count={count}")


def _draw(rng, count, digits, taken):
    """`count` operand pairs (x, y) not in `taken`, each added to it (so all are distinct)."""
    pairs = []
    while len(pairs) < count:
        a, b = _operands(rng, 2 * count, digits), _operands(rng, 2 * count, digits)
        for x, y in zip(a.tolist(), b.tolist()):
            if (x, y) not in taken and len(pairs) < count:
                taken.add((x, y))
                pairs.append((x, y))
    return pairs


def _strings(pairs, digits, reverse):
    width = 2 * digits + 1
    questions = [f"{x}+{y}".ljust(width) for x, y in pairs]
    if reverse:
        questions = [q[::-1] for q in questions]
    return questions, [str(x + y).ljust(digits + 1) for x, y in pairs]


def addition_pairs(count, digits=3, seed=0, reverse=False):
    """`count` unique (question, answer) string pairs: (questions, answers).

    Raises:
        ValueError: if fewer than `count` distinct pairs exist.
    """
    _check_count(count, (10**digits) ** 2, "pairs")
    return _strings(_draw(np.random.default_rng(seed), count, digits, set()), digits, reverse)


def train_test_pairs(train_count, test_count, digits=3, seed=0, reverse=False):
    """Training and held-out pairs: ((questions, answers), (questions, answers)).

    The training pairs are `addition_pairs(train_count, digits, seed)`; the
    held-out ones are drawn after them from the same generator, unique, and
    none of them is a training pair in either operand order.

    Raises:
        ValueError: if fewer than `test_count` pairs remain outside training.
    """
    _check_count(train_count, (10**digits) ** 2, "pairs")
    rng, taken = np.random.default_rng(seed), set()
    train = _draw(rng, train_count, digits, taken)
    taken.update((y, x) for x, y in train)
    _check_count(test_count, (10**digits) ** 2 - len(taken), "pairs outside the training pairs and their swaps")
    test = _draw(rng, test_count, digits, taken)
    return _strings(train, digits, reverse), _strings(test, digits, reverse)


def operand_digits(question):
    """(digits of x, digits of y) of a question "x+y" (padding and reversal allowed)."""
    x, y = question.strip().split("+")
    return len(x), len(y)


def encode(strings):
    """Equal-length strings -> (N, L) int32 ids over `VOCABULARY`."""
    return np.array([[_INDEX[ch] for ch in s] for s in strings], np.int32)


def decode(ids):
    return ["".join(VOCABULARY[int(i)] for i in row) for row in np.asarray(ids)]
