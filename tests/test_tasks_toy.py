"""The generated toy tasks: layouts, seeds and the baselines they are judged against."""

import numpy as np
import pytest

from training.data import adding, addition_pairs, binary_addition, copying, interval_timing, later_context_tagging


def test_binary_addition_targets_are_the_sum_delayed_two_steps():
    rng = np.random.default_rng(0)
    inputs, targets = binary_addition.addition_batch(rng, 200, n_bits=64)
    assert inputs.shape == (200, 67, 2) and targets.shape == (200, 67, 1)
    assert np.all(targets[:, :2] == 0) and np.all(inputs[:, 64:] == 0)
    for row_in, row_out in zip(inputs, targets):
        a, b = (binary_addition.bits_to_int(row_in[:, k]) for k in (0, 1))
        assert binary_addition.bits_to_int(row_out[2:, 0]) == a + b  # 65 bits, beyond int64
    assert binary_addition.exact_match(targets, targets) == 1.0
    flipped = targets.copy()
    flipped[0, 5] = 1 - flipped[0, 5]
    assert binary_addition.exact_match(flipped, targets) == pytest.approx(199 / 200)


def test_binary_addition_rejects_a_negative_delay():
    with pytest.raises(ValueError, match=r"`delay` must be a non-negative integer\. Received: delay=-1"):
        binary_addition.addition_batch(np.random.default_rng(0), 1, 8, delay=-1)


def test_adding_problem_predicting_one_scores_one_sixth():
    inputs, targets = adding.adding_batch(np.random.default_rng(1), 200_000, 20)
    markers = inputs[..., 1]
    assert np.all(markers[:, :10].sum(1) == 1) and np.all(markers[:, 10:].sum(1) == 1)
    np.testing.assert_allclose(targets[:, 0], (inputs[..., 0] * markers).sum(1), rtol=1e-6)
    assert np.mean((targets - 1.0) ** 2) == pytest.approx(adding.BASELINE_MSE, abs=2e-3)
    assert adding.BASELINE_MSE == pytest.approx(0.167, abs=5e-4)


def test_adding_problem_needs_two_halves():
    with pytest.raises(ValueError, match="`length` must be at least 2"):
        adding.adding_batch(np.random.default_rng(0), 1, 1)


def test_addition_pairs_are_right_unique_padded_and_reversible():
    questions, answers = addition_pairs.addition_pairs(3000, digits=3, seed=4)
    assert len(set(questions)) == 3000 and {len(q) for q in questions} == {7} and {len(a) for a in answers} == {4}
    for q, a in zip(questions, answers):
        x, y = q.strip().split("+")
        assert int(a) == int(x) + int(y)
    reversed_questions, same_answers = addition_pairs.addition_pairs(3000, digits=3, seed=4, reverse=True)
    assert reversed_questions == [q[::-1] for q in questions] and same_answers == answers
    (train, _), (test, _) = addition_pairs.train_test_pairs(2000, 500, seed=5)
    assert not set(train) & set(test)
    assert addition_pairs.decode(addition_pairs.encode(["123+456"])) == ["123+456"]


def test_addition_pairs_refuse_impossible_counts():
    with pytest.raises(ValueError, match=r"Only 100 distinct pairs exist\. Received: count=101"):
        addition_pairs.addition_pairs(101, digits=1)


def test_tagging_ambiguous_words_take_the_next_plain_words_tag():
    words, tags = later_context_tagging.tagging_batch(np.random.default_rng(6), 300)
    plain = words < 20
    assert np.all(plain[:, -1]) and np.all(tags[plain] == words[plain] // 5)
    for t in range(19):
        ambiguous = ~plain[:, t]
        np.testing.assert_array_equal(tags[ambiguous, t], tags[ambiguous, t + 1])


def test_tagging_causal_ceiling_is_reached_by_the_best_causal_tagger_and_no_further():
    words, tags = later_context_tagging.tagging_batch(np.random.default_rng(7), 20_000)
    ceiling = later_context_tagging.causal_accuracy_ceiling()
    assert ceiling == pytest.approx(0.64375)
    # The Bayes-optimal causal guess: the word's own tag, or a fixed tag when ambiguous.
    guess = np.where(words < 20, words // 5, 0)
    assert np.mean(guess == tags) == pytest.approx(ceiling, abs=0.005)


def test_interval_timing_answers_one_delay_after_the_second_spike():
    inputs, targets = interval_timing.interval_batch(np.random.default_rng(8), 20_000)
    assert inputs.shape == targets.shape == (20_000, 150, 1)
    assert np.all(inputs.sum(axis=(1, 2)) == 2) and np.all(targets.sum(axis=(1, 2)) == 1)
    first, second = np.argwhere(inputs[..., 0] == 1.0).reshape(-1, 2, 2)[:, :, 1].T
    answer = np.argmax(targets[..., 0], axis=1)
    np.testing.assert_array_equal(answer - second, second - first)
    assert (second - first).min() == 30 and (second - first).max() == 60 and answer.max() == 149
    # the empirical frequency of the answer on each step is the mean baseline's p_t
    frequency = np.bincount(answer, minlength=150) / len(answer)
    np.testing.assert_allclose(frequency, interval_timing.spike_probabilities(), atol=0.004)
    assert interval_timing.spike_probabilities().sum() == pytest.approx(1.0)


def test_interval_timing_mean_baseline_is_the_mse_of_predicting_p_t():
    inputs, targets = interval_timing.interval_batch(np.random.default_rng(3), 50_000)
    p = interval_timing.spike_probabilities()
    empirical = np.mean((targets[..., 0] - p) ** 2)
    assert empirical == pytest.approx(interval_timing.mean_baseline_mse(), rel=0.02)
    assert interval_timing.mean_baseline_mse() < np.mean(targets**2) == pytest.approx(1 / 150)


def test_interval_timing_exact_timing_reads_the_peak_after_the_second_spike():
    inputs, targets = interval_timing.interval_batch(np.random.default_rng(1), 4, length=20, min_interval=3,
                                                     max_interval=6)
    assert interval_timing.exact_timing(targets, inputs, targets) == 1.0
    late = np.roll(targets, 1, axis=1)  # every answer one step late
    assert interval_timing.exact_timing(late, inputs, targets) == 0.0
    echo = targets + 2.0 * inputs  # peaks on the input spikes do not count: only steps after the second
    assert interval_timing.exact_timing(echo, inputs, targets) == 1.0


def test_interval_timing_rejects_intervals_that_do_not_fit():
    with pytest.raises(ValueError, match=r"2 \* max_interval < length.*Received: min_interval=30, max_interval=60, "
                                         r"length=120"):
        interval_timing.interval_batch(np.random.default_rng(0), 1, length=120)
    with pytest.raises(ValueError, match=r"Received: min_interval=0"):
        interval_timing.spike_probabilities(min_interval=0)


def test_copying_layout_symbols_then_blanks_then_delimiter_then_recall():
    inputs, targets = copying.copying_batch(np.random.default_rng(0), 500, blanks=30)
    assert inputs.shape == targets.shape == (500, 50) and inputs.dtype == targets.dtype == np.int32
    symbols = inputs[:, :10]
    assert symbols.min() == 1 and symbols.max() == 8  # every category drawn, never a blank or the delimiter
    np.testing.assert_array_equal(inputs[:, 10:39], 0)
    np.testing.assert_array_equal(inputs[:, 39], copying.DELIMITER)  # the T-th step after the symbols
    np.testing.assert_array_equal(inputs[:, 40:], 0)
    np.testing.assert_array_equal(targets[:, :40], 0)
    np.testing.assert_array_equal(targets[:, 40:], symbols)  # recalled in order during the last 10 steps


def test_copying_baseline_is_the_memoryless_answer():
    """Blanks with certainty, then uniform over the 8 categories: the loss of a net that remembers nothing."""
    blanks = 1000
    _, targets = copying.copying_batch(np.random.default_rng(1), 4, blanks)
    probabilities = np.zeros((*targets.shape, 9))
    probabilities[:, :-10, 0] = 1.0
    probabilities[:, -10:, 1:] = 1.0 / 8
    nats = -np.log(np.take_along_axis(probabilities, targets[..., None], axis=-1)).mean()
    assert nats == pytest.approx(copying.baseline_loss(blanks), rel=1e-12)
    assert copying.baseline_loss(1000) == pytest.approx(0.0204, abs=5e-5)


def test_copying_rejects_no_blanks():
    with pytest.raises(ValueError, match=r"`blanks` must be a positive integer\. Received: blanks=0"):
        copying.copying_batch(np.random.default_rng(0), 1, 0)
