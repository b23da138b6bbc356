"""benchmarks.char_recipes: a candidate is its recipe with the options given, and a finished run is measured again."""

import argparse
import json

import pytest

from benchmarks.char_recipes import candidate_options, parse_candidate, train_candidate


def test_a_candidate_is_the_recipe_with_the_options_given_on_one_thread():
    changes = parse_candidate("dropout=0.15,batch_size=64,learning_rate=3e-3")
    assert changes == {"dropout": 0.15, "batch_size": 64, "learning_rate": 0.003}
    assert isinstance(changes["batch_size"], int)
    args = argparse.Namespace(model="char_gru", steps=300, mixed_precision=True)
    assert candidate_options(args, changes) == {
        "out_dir": "runs/char_gru_batch_size64_dropout0.15_learning_rate0.003", "threads": 1, "steps": 300,
        "mixed_precision": True, "dropout": 0.15, "batch_size": 64, "learning_rate": 0.003}
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        parse_candidate("dropout")


def test_a_candidate_can_size_the_model():
    args = argparse.Namespace(model="char_lstm", steps=None, mixed_precision=False)
    assert candidate_options(args, parse_candidate("units=384,batch_size=32")) == {
        "out_dir": "runs/char_lstm_batch_size32_units384", "threads": 1, "overrides": {"units": 384}, "batch_size": 32}


def test_a_finished_candidate_is_measured_again_not_retrained(tmp_path):
    corpus = tmp_path / "hello.txt"
    corpus.write_text("hello world, hello zoo. " * 300)
    options = dict(text=str(corpus), dropout=0.2, steps=2, batch_size=4, seq_len=8, eval_every=2, eval_chars=200,
                   checkpoint_every=2, threads=0, out_dir=str(tmp_path / "run"), overrides={"units": 8})
    first = train_candidate("char_lstm", options)
    assert first["metrics"]["steps"] == 2 and [step for step, _ in first["validation_curve"]] == [2]
    assert "dropout 0.2" in first["notes"] and first["at_most_issue_bar"] is False  # two updates: far above it
    again = train_candidate("char_lstm", options)
    assert again["metrics"] == first["metrics"] and again["validation_curve"] == first["validation_curve"]


@pytest.mark.parametrize("candidate, message", [
    ("dropout=1.5", r"candidate {'dropout': 1.5}: `dropout` must be a number in [0.0, 1.0)"),
    ("unrolled=1", r"candidate {'unrolled': 1}: Unknown recipe field(s) ['unrolled']"),
    ("units=0", r"candidate {'units': 0}: `units` must be a positive integer. Received: units=0"),
])
def test_every_candidate_is_checked_before_any_trains(candidate, message, capsys, monkeypatch):
    import benchmarks.char_recipes as char_recipes

    monkeypatch.setattr(char_recipes, "train_all", lambda args: pytest.fail("a candidate trained"))
    with pytest.raises(SystemExit) as exit_info:
        char_recipes.main(["--candidate", "batch_size=32", "--candidate", candidate, "--out", "/dev/null"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_only_char_lstm_is_judged_against_the_issue_bar():
    from benchmarks.char_recipes import _at_most_issue_bar

    assert _at_most_issue_bar("char_lstm", 1.349, within_budget=True) is True
    assert _at_most_issue_bar("char_lstm", 1.349, within_budget=False) is False
    assert _at_most_issue_bar("char_lstm", 1.36, within_budget=True) is False
    assert _at_most_issue_bar("char_gru", 1.30, within_budget=True) is None  # no bar: a table says only the budget


def _results_file(path, model, values):
    path.write_text(json.dumps({"machine": {"cpu": "Test CPU"}, "model": model, "candidates": [
        {"changes": {"units": units}, "value": value, "within_budget": value < 2,
         "metrics": {"train_cpu_minutes": 40.0}} for units, value in values]}))


def test_the_card_keeps_every_candidate_tried_for_its_model_best_first(tmp_path):
    from benchmarks.char_recipes import record_tried

    results, models = tmp_path / "results", tmp_path / "models"
    results.mkdir()
    (models / "char_lstm").mkdir(parents=True)
    (models / "char_lstm" / "card.json").write_text(json.dumps({"served_version": 3, "tried": ["stale"]}))
    _results_file(results / "char_recipes.json", "char_lstm", [(256, 1.40), (384, 1.36)])
    _results_file(results / "char_recipes_wider.json", "char_lstm", [(512, 2.50)])
    _results_file(results / "char_recipes_gru.json", "char_gru", [(256, 1.30)])  # another model's: not on this card
    record_tried("char_lstm", models_dir=models, results_dir=results)
    card = json.loads((models / "char_lstm" / "card.json").read_text())
    assert card["served_version"] == 3
    assert [(row["changes"], row["nats_per_char"], row["within_budget"]) for row in card["tried"]] == [
        ({"units": 384}, 1.36, True), ({"units": 256}, 1.40, True), ({"units": 512}, 2.50, False)]
    assert card["tried"][-1]["results"] == "benchmarks/results/char_recipes_wider.json"
    assert card["tried"][0]["machine"] == "Test CPU" and card["tried"][0]["train_cpu_minutes"] == 40.0


def test_a_new_version_keeps_what_the_previous_card_says_was_tried(tmp_path):
    from training.publish import _kept_from_previous_card

    assert _kept_from_previous_card(tmp_path) == {}  # first version: nothing to keep
    (tmp_path / "card.json").write_text(json.dumps({"tried": [{"changes": {"units": 384}}], "metrics": {"x": 1}}))
    assert _kept_from_previous_card(tmp_path) == {"tried": [{"changes": {"units": 384}}]}
