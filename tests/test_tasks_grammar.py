"""Elman's grammar: valid sentences, true likelihoods that sum to 1 and match the corpus."""

import numpy as np
import pytest

from training.data import elman_grammar as g


def test_lexicon_and_templates_as_published():
    assert len(g.WORDS) == 29 and len(set(g.WORDS)) == 29 and len(g.TEMPLATES) == 16
    assert set().union(*g.CATEGORIES.values()) == set(g.WORDS)
    assert "see" in g.CATEGORIES["TRAN"] and "see" in g.CATEGORIES["PERCEPT"]
    assert "break" in g.CATEGORIES["AGPAT"] and "break" in g.CATEGORIES["DESTROY"]
    # Inclusions read the same way on both sides of the animacy line (the module's docstring).
    assert set(g.CATEGORIES["HUM"] + g.CATEGORIES["AGRESS"]) < set(g.CATEGORIES["ANIM"])
    assert set(g.CATEGORIES["FRAG"] + g.CATEGORIES["FOOD"]) < set(g.CATEGORIES["INANIM"])
    assert not set(g.CATEGORIES["ANIM"]) & set(g.CATEGORIES["INANIM"])


def test_every_generated_sentence_is_valid_and_the_corpus_has_the_papers_size():
    templates, words = g.sentences(2000, seed=3)
    for template, row in zip(templates, words):
        real = [w for w in row if w >= 0]
        assert len(real) == len(g.TEMPLATES[template]) and g.is_valid_sentence(real)
    corpus = g.corpus()
    assert 27_000 < len(corpus["ids"]) < 28_000  # 10,000 sentences ≈ 27,500 words
    assert corpus["ids"].max() < 29 and len(corpus["sentence_starts"]) == 10_000


def test_invalid_sentences_are_rejected():
    index = {w: i for i, w in enumerate(g.WORDS)}
    assert not g.is_valid_sentence([index["rock"], index["eat"], index["cookie"]])
    assert not g.is_valid_sentence([index["man"], index["eat"]])


def test_likelihoods_sum_to_one_and_have_the_spare_bits_at_zero():
    corpus = g.corpus(2000, seed=1)
    np.testing.assert_allclose(corpus["truth"].sum(axis=1), 1.0, atol=1e-12)
    assert np.all(corpus["truth"][:, 29:] == 0)


def test_likelihood_after_an_ambiguous_verb_by_hand():
    index = {w: i for i, w in enumerate(g.WORDS)}
    row = g.true_likelihoods(np.array([[index["man"], index["break"], -1]]))[0, 1]
    # "man" is HUM (1 of 4) in templates 3 (DESTROY FRAG), 6 (AGPAT INANIM), 7 (AGPAT, ends) and ANIM
    # (1 of 10) in 10 (AGPAT INANIM), 11 (AGPAT, ends); "break" is 1 of 2 in each: weights 5:5:5:2:2 over 19.
    first_glass = 1 / 16 * 1 / 8  # "glass" opening template 12 (INANIM AGPAT)
    expected = 5 / 19 * (1 / 2 + 1 / 8 + first_glass) + 2 / 19 * (1 / 8 + first_glass)
    assert row[index["glass"]] == pytest.approx(expected)
    assert row[index["eat"]] == 0.0


def test_likelihoods_match_the_corpus_frequencies():
    corpus = g.corpus(40_000, seed=2)
    ids, truth = corpus["ids"], corpus["truth"]
    after_dragon = ids[:-1] == g.WORDS.index("dragon")  # the word after each "dragon"
    empirical = np.bincount(ids[1:][after_dragon], minlength=29) / after_dragon.sum()
    # "dragon" opens sentences and ends them (an ANIM object): the likelihoods differ by position, and
    # their mean over its occurrences is the frequency of each next word.
    np.testing.assert_allclose(empirical, truth[:-1][after_dragon][:, :29].mean(axis=0), atol=0.01)
    assert len({tuple(row) for row in truth[:-1][after_dragon].round(12)}) > 1


def test_cosine_of_the_truth_is_one_and_of_uniform_guessing_is_lower():
    truth = g.corpus(500)["truth"]
    assert g.cosine_to_truth(truth, truth) == pytest.approx(1.0)
    assert g.rms_to_truth(truth, truth) == 0.0
    assert g.cosine_to_truth(np.full_like(truth, 1 / 31), truth) < 0.7
