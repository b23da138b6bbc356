"""Elman's temporal XOR (Elman 1990, Finding Structure in Time, section "Exclusive-OR").

An endless stream of bits in triples: two random bits, then their XOR. A network reading one bit per step and
predicting the next can be right only on every third bit (the XOR, known once both of its operands have been read);
the two random bits of each triple stay at chance. Elman's Figure 1 shows the error falling near zero on the
predictable bits while staying high on the others.
"""

import numpy as np

from zoo._checks import check_non_negative_int, check_positive_int

__all__ = ["xor_bits", "XorStream", "phase_errors"]


def xor_bits(rng, triples, streams=1):
    """`streams` independent streams of `triples` triples: (streams, 3·triples) float32 bits."""
    check_positive_int("triples", triples)
    pairs = rng.integers(0, 2, size=(streams, triples, 2))
    bits = np.concatenate([pairs, pairs[..., :1] ^ pairs[..., 1:]], axis=-1)  # (streams, triples, 3)
    return bits.reshape(streams, 3 * triples).astype(np.float32)


class XorStream:
    """One endless stream, read in consecutive chunks: each bit is the input once and the target once.

    `chunk(n)` returns inputs (streams, n, 1), targets (streams, n, 1) and the phase of each target (n,):
    2 where the target is the XOR of the two inputs before it (predictable), 0 and 1 where it is a random bit.
    Chunks continue one another exactly, with no boundary the network could see.
    """

    def __init__(self, seed, streams=1):
        self.rng = np.random.default_rng(seed)
        self.streams = check_positive_int("streams", streams)
        self.buffer = xor_bits(self.rng, 1, streams)
        self.position = 0  # stream index of buffer[:, 0]

    def chunk(self, steps):
        check_non_negative_int("steps", steps)
        need = steps + 1 - self.buffer.shape[1]
        if need > 0:
            self.buffer = np.concatenate([self.buffer, xor_bits(self.rng, -(-need // 3), self.streams)], axis=1)
        bits = self.buffer[:, : steps + 1]
        phases = (self.position + 1 + np.arange(steps)) % 3
        self.buffer, self.position = self.buffer[:, steps:], self.position + steps
        return bits[:, :-1, None], bits[:, 1:, None], phases


def phase_errors(probabilities, targets, phases):
    """Mean squared error of the predicted probability at each phase of the triple: {0: ., 1: ., 2: .}.

    Phase 2 is the predictable bit; guessing 0.5 scores 0.25 at every phase.
    """
    squared = (np.asarray(probabilities, np.float64) - np.asarray(targets, np.float64)) ** 2
    squared = squared.reshape(squared.shape[0], squared.shape[1], -1).mean(axis=(0, 2))  # (T,)
    return {int(phase): float(squared[phases == phase].mean()) for phase in range(3)}
