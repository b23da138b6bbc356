"""Interleaved timing: the contenders of one benchmark run in alternating order, round after round, so a
shared machine's load falls on all of them alike."""

import time

__all__ = ["interleaved"]


def interleaved(contenders, rounds, blocks):
    """Times each contender `rounds` times, reversing the order every other round.

    Args:
        contenders: key -> a callable that runs one step.
        rounds: how many times each contender is timed.
        blocks: key -> steps per timing (a block long enough for the clock), or one int for all.

    Returns:
        `(wall, cpu)`: key -> list of seconds per step, one per round.
    """
    blocks = blocks if isinstance(blocks, dict) else dict.fromkeys(contenders, blocks)
    wall = {key: [] for key in contenders}
    cpu = {key: [] for key in contenders}
    for round_index in range(rounds):
        order = list(contenders) if round_index % 2 else list(contenders)[::-1]
        for key in order:
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(blocks[key]):
                contenders[key]()
            wall[key].append((time.perf_counter() - wall_start) / blocks[key])
            cpu[key].append((time.process_time() - cpu_start) / blocks[key])
    return wall, cpu
