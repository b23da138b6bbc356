"""zoo.get / zoo.list / zoo.card: the registry users build models through."""

import json
import os

import numpy as np
import pytest

import zoo
from zoo import _registry
from zoo._registry import CARD_FIELDS, register

_CARD = {"task": "t", "paper": "p", "data": "d", "recipe": "r"}


@pytest.fixture
def scratch_name():
    """A registry name removed again after the test."""
    yield "scratch_model"
    _registry._REGISTRY.pop("scratch_model", None)


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
    with pytest.raises(ValueError, match="A model named 'char_lstm' is already registered"):
        register("char_lstm", defaults={}, card=_CARD)(lambda: None)


def test_register_is_a_decorator_and_get_merges_overrides(scratch_name):
    @register(scratch_name, defaults={"width": 2}, card=_CARD)
    def scratch(width):
        return {"width": width}

    assert scratch(5) == {"width": 5}  # the factory itself is returned unchanged
    assert zoo.get(scratch_name) == {"width": 2} and zoo.get(scratch_name, width=7) == {"width": 7}
    assert scratch_name in zoo.list("scratch_*")


def test_example_input_builds_a_model_and_merges_the_config_over_the_defaults(scratch_name):
    seen = []
    register(scratch_name, defaults={"width": 2, "depth": 1}, card=_CARD,
             example_input=lambda config: seen.append(config) or np.zeros((1, config["width"])))(dict)
    assert zoo.example_input(scratch_name).shape == (1, 2)
    assert zoo.example_input(scratch_name, {"width": 5}).shape == (1, 5)
    assert seen == [{"width": 2, "depth": 1}, {"width": 5, "depth": 1}]


def test_example_input_errors_name_the_model(scratch_name):
    register(scratch_name, defaults={}, card=_CARD)(dict)
    with pytest.raises(ValueError, match=r"Model 'scratch_model' registers no `example_input`\. Pass `example_input=`"):
        zoo.example_input(scratch_name)
    with pytest.raises(ValueError, match=r"Unknown model 'char_lstn'\. Did you mean 'char_lstm'"):
        zoo.example_input("char_lstn")


def test_a_card_without_its_static_fields_is_refused(scratch_name):
    with pytest.raises(ValueError, match=r"The card of 'scratch_model' lacks \['paper', 'recipe'\]"):
        register(scratch_name, defaults={}, card={"task": "t", "data": "d"})


def test_list_filters_by_task_and_shipped_weights(tmp_path, monkeypatch):
    assert zoo.list(task="adding problem, T = 200") == ["adding_elman", "adding_gru", "adding_lstm"]
    assert zoo.list("adding_*", task="character language modelling") == []
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path))
    (tmp_path / "binary_adder").mkdir()
    (tmp_path / "binary_adder" / "binary_adder.keras").write_bytes(b"")
    assert zoo.list(pretrained=True) == ["binary_adder"]
    assert "binary_adder" not in zoo.list(pretrained=False) and "char_lstm" in zoo.list(pretrained=False)


@pytest.mark.slow
def test_weights_from_a_path_load_and_a_changed_head_is_reinitialised_with_a_warning(tmp_path):
    trained = zoo.get("char_lstm", units=8, embedding_dim=4, vocabulary="abc")
    trained(np.zeros((1, 2), np.int32))
    path = tmp_path / "small.keras"
    trained.save(path)

    same = zoo.get("char_lstm", weights=path)
    np.testing.assert_array_equal(same.head.kernel.numpy(), trained.head.kernel.numpy())
    message = r"re-initialised, not loaded: 'embedding/embeddings' .*'logits/kernel' \(8, 3\) -> \(8, 4\)"
    with pytest.warns(UserWarning, match=message):
        bigger = zoo.get("char_lstm", weights=path, vocabulary="abcd")
    recurrent = bigger.recurrent[1].cell.recurrent_kernel.numpy()
    np.testing.assert_array_equal(recurrent, trained.recurrent[1].cell.recurrent_kernel.numpy())
    assert bigger.head.kernel.shape == (8, 4) and bigger.units == 8  # the file's config, then the overrides


def test_missing_weights_explain_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path))
    with pytest.raises(ValueError, match=r"No shipped weights for model 'char_lstm' at .*char_lstm\.keras\. Train "
                       r"and publish it first \(python -m training train char_lstm --publish\), or set RNN_ZOO_MODELS"):
        zoo.get("char_lstm", weights="default")
    with pytest.raises(ValueError, match=r"No weights for model 'char_lstm' at .*nothing\.keras\. Expected 'default', "
                       r"a `\.keras` file or a URL ending in #sha256=<hex>"):
        zoo.get("char_lstm", weights=str(tmp_path / "nothing.keras"))
    assert zoo.list(pretrained=True) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list())
def test_every_card_has_every_field(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path))  # nothing shipped: static fields only
    card = zoo.card(name)
    assert set(CARD_FIELDS) <= set(card)
    for field in ("task", "paper", "data", "recipe", "export", "defaults"):
        assert card[field], field
    assert isinstance(card["parameters"], int) and card["parameters"] > 0
    assert card["metrics"] is None and card["machine"] is None  # not measured: said plainly


def test_card_merges_the_measured_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path))
    (tmp_path / "binary_adder").mkdir()
    measured = {"metrics": {"exact_64bit": 1.0}, "seed": 3, "machine": {"cpu_count": 2}, "parameters": 22}
    (tmp_path / "binary_adder" / "card.json").write_text(json.dumps(measured))
    card = zoo.card("binary_adder")
    assert card["metrics"] == {"exact_64bit": 1.0} and card["seed"] == 3 and card["task"].startswith("bit-serial")


@pytest.mark.parametrize("name", zoo.list(pretrained=True))
def test_every_shipped_model_loads_runs_and_its_card_metrics_parse(name):
    card = zoo.card(name)
    assert card["metrics"] and all(isinstance(v, (int, float)) for v in card["metrics"].values())
    assert card["machine"]["cpu_count"] >= 1 and isinstance(card["seed"], int)
    model = zoo.get(name, weights="default")
    outputs = model(zoo.example_input(name, card["defaults"]))
    outputs = outputs[0] if isinstance(outputs, tuple) else outputs
    assert np.all(np.isfinite(np.asarray(outputs)))
    assert (_registry.artifact_dir(name) / str(card["served_version"]) / "saved_model.pb").exists()


def test_a_card_is_written_whole_through_a_staging_file(tmp_path, monkeypatch):
    from zoo._registry import write_card

    (tmp_path / "card.json").write_text('{"served_version": 1}')
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: renamed.append((src.name, dst.name)) or real_replace(src, dst))
    assert write_card(tmp_path, {"served_version": 2, "metrics": {"b": 1, "a": 2}}) == tmp_path / "card.json"
    assert renamed == [("card.json.tmp", "card.json")]  # readers see the old card or the new one, never a part
    assert json.loads((tmp_path / "card.json").read_text()) == {"served_version": 2, "metrics": {"a": 2, "b": 1}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]
