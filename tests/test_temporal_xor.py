"""Elman's temporal XOR stream (training.data.temporal_xor) and its online recipe."""

import numpy as np
import pytest

from training.data import temporal_xor


def test_chunks_continue_one_stream_whose_phase_two_targets_are_the_xor():
    whole = temporal_xor.XorStream(7).chunk(30)
    stream = temporal_xor.XorStream(7)
    pieces = [stream.chunk(n) for n in (4, 11, 0, 15)]
    for whole_part, pieced in zip(whole, (np.concatenate([p[i] for p in pieces], axis=-2 if i < 2 else 0)
                                          for i in range(3))):
        np.testing.assert_array_equal(whole_part, pieced)
    inputs, targets, phases = whole
    np.testing.assert_array_equal(inputs[0, 1:, 0], targets[0, :-1, 0])  # each bit the input once, the target once
    for t in np.flatnonzero(phases == 2)[1:]:
        assert targets[0, t, 0] == float(int(inputs[0, t - 1, 0]) ^ int(inputs[0, t, 0]))


def test_phase_errors_score_chance_and_a_perfect_xor_guess():
    _, targets, phases = temporal_xor.XorStream(0).chunk(300)
    guess = np.where(phases[None, :, None] == 2, targets, 0.5)
    errors = temporal_xor.phase_errors(guess, targets, phases)
    assert errors == {0: pytest.approx(0.25), 1: pytest.approx(0.25), 2: 0.0}


@pytest.mark.slow
def test_recipe_trains_online_and_reports_truncated_bptt_beside(tmp_path):
    from training.recipes import recipe_for

    recipe = recipe_for("temporal_xor", bits=30, log_every=15, eval_bits=60, out_dir=str(tmp_path / "run"),
                        threads=0)  # the test process already runs TensorFlow on its default pools
    _, metrics = recipe.train(verbose=0)
    assert {"predictable_mse", "random_mse", "tbptt_predictable_mse", "tbptt_random_mse"} <= set(metrics)
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2
    assert recipe.judge(metrics)["metric"] == "predictable_mse"
