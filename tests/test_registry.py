"""zoo.get / zoo.list / zoo.card: the registry users build models through."""

import numpy as np
import pytest

import zoo
from zoo._registry import register


def test_list_has_char_lstm_and_filters():
    assert "char_lstm" in zoo.list()
    assert zoo.list("char_*") == [n for n in zoo.list() if n.startswith("char_")]
    assert zoo.list("nothing_matches_*") == []
    assert "char_lstm" in zoo.list(task="character language modelling")


def test_overrides_merge_last():
    model = zoo.get("char_lstm", units=24, num_layers=3, vocabulary="abc")
    assert (model.units, model.num_layers, model.vocabulary) == (24, 3, "abc")
    logits, states = model(np.zeros((2, 5), np.int32))
    assert logits.shape == (2, 5, 3) and len(states) == 3


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"Unknown model 'char_lstn'\. Did you mean 'char_lstm'"):
        zoo.get("char_lstn")


def test_unknown_override_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown argument\(s\) \['hidden'\] for model 'char_lstm'"):
        zoo.get("char_lstm", hidden=3)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register("char_lstm", defaults={}, card={})(lambda: None)


def test_missing_weights_explain_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path))
    with pytest.raises(ValueError, match="No weights for model 'char_lstm'"):
        zoo.get("char_lstm", weights="default")
    assert zoo.list(pretrained=True) == []


def test_card_has_the_static_fields():
    card = zoo.card("char_lstm")
    for field in ("task", "paper", "data", "recipe", "defaults"):
        assert card[field]
