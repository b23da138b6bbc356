"""The elman_grammar row's dendrogram flags: which word classes are subtrees of the average-linkage tree."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from training.data import elman_grammar as g
from training.recipes.elman_grammar import FIGURE7_SPLITS, dendrogram_flags


def _means(verbs, animates, inanimates):
    """(29, 4) word vectors: class centres on axis 0, humans and foods set apart on axes 1 and 2."""
    rng = np.random.default_rng(0)
    vectors = 0.01 * rng.standard_normal((len(g.WORDS), 4))
    for i, word in enumerate(g.WORDS):
        if i >= 18:
            vectors[i, 0] += verbs
        elif word in g.CATEGORIES["ANIM"]:
            vectors[i, 0] += animates
            vectors[i, 1] += word in g.CATEGORIES["HUM"]
        else:
            vectors[i, 0] += inanimates
            vectors[i, 2] += word in g.CATEGORIES["FOOD"]
    return vectors


def test_figure7_tree_raises_every_flag():
    # nouns far from verbs; inside the nouns, animates and inanimates apart
    flags = dendrogram_flags(_means(verbs=40.0, animates=-5.0, inanimates=5.0))
    assert flags == {f"dendrogram_{name}_clade": 1.0
                     for name in ("nouns", "verbs", "animates", "inanimates", "humans", "foods")}


def test_animates_split_off_first_is_not_figure7():
    # the miss this row once had: inanimates sit nearer the verbs than the animates
    flags = dendrogram_flags(_means(verbs=8.0, animates=-30.0, inanimates=0.0))
    assert flags["dendrogram_nouns_clade"] == 0.0
    assert flags["dendrogram_verbs_clade"] == flags["dendrogram_animates_clade"] == 1.0
    assert not all(flags[f"dendrogram_{name}_clade"] for name in FIGURE7_SPLITS)
