"""The card figures (`training.plots`): each writes a real PNG, the panels read the right series,
a missing or foreign run folder is said in the card, and publishing draws and lists the figures."""

import json
import math
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # matplotlib's dependency

from training import plots
from training.recipes import recipe_for

# On every recurrent model's card (zoo.diagnostics).
MEMORY_FIGURES = {"eigenvalues": "eigenvalues.png", "jacobian_norms": "jacobian_norms.png"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path, size):
    """A decodable PNG of `size` pixels (100 dpi), small, and not blank."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = Image.open(path)
    assert image.size == size
    assert path.stat().st_size < 100_000
    assert len(image.convert("RGB").getcolors(maxcolors=10**6)) > 20  # lines, text and anti-aliasing


def _task_records(steps=40, eval_every=10):
    rng = np.random.default_rng(0)
    records = []
    for step in range(1, steps + 1):
        record = {"step": step, "loss": float(np.exp(-step / 10) + 0.01 * rng.random()), "seconds": step / 10}
        if step % eval_every == 0:
            record.update(mse=float(np.exp(-step / 10)), mean_baseline_mse=0.0222)
        records.append(record)
    return records


def _char_records(steps=40):
    records = []
    for step in range(1, steps + 1):
        loss = 4.0 - step / 20
        record = {"step": step, "loss": loss, "bpc": loss / math.log(2), "seconds": step, "cpu_seconds": 2 * step}
        if step % 10 == 0:
            record.update(val_nats=loss + 0.1, val_bpc=(loss + 0.1) / math.log(2))
        records.append(record)
    return records


def _write_run(folder, records, config):
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "config.json").write_text(json.dumps(config))


# -- the drawing functions --------------------------------------------------------------


@pytest.mark.parametrize("draw, size", [
    (lambda path: plots.training_curve(_task_records(), path, "task run"), (900, 340)),
    (lambda path: plots.training_curve(_char_records(), path, "character run"), (550, 340)),
    (lambda path: plots.gradient_norm_curves({"a": np.geomspace(1e-12, 1e-3, 200), "b": np.full(200, 1e-4)},
                                             path, "gradients"), (640, 380)),
    (lambda path: plots.dendrogram(np.random.default_rng(0).random((6, 3)), list("abcdef"), path, "tree"),
     (900, 400)),
    (lambda path: plots.forecast_vs_truth(np.sin(np.arange(100) / 5), np.sin(np.arange(100) / 5) + 0.01, path,
                                          "forecast"), (800, 450)),
    (lambda path: plots.cycle_error(np.tile([0.25, 0.25, 0.0], 8), np.tile([0, 1, 2], 8), path, "xor"), (640, 340)),
    (lambda path: plots.eigenvalue_planes({"rnn/U_i": np.array([0.5, 1j]), "rnn/U_f": np.array([0.9])}, path,
                                          "eigenvalues"), (550, 380)),
    (lambda path: plots.jacobian_norm_curves({"rnn": np.geomspace(1, 1e-6, 30)}, path, "jacobians"), (640, 380)),
], ids=["task_curve", "char_curve", "gradient_norms", "dendrogram", "forecast", "cycle_error", "eigenvalues",
        "jacobian_norms"])
def test_each_figure_writes_a_small_png(tmp_path, draw, size):
    path = draw(tmp_path / "sub" / "figure.png")
    assert path == tmp_path / "sub" / "figure.png"
    _check_png(path, size)


def test_curve_series_reads_bits_per_character_runs_and_task_runs():
    assert plots.curve_series(_char_records()) == ("bits per character", ["bpc", "val_bpc"], [], [])
    assert plots.curve_series(_task_records()) == ("loss", ["loss"], ["mse"], ["mean_baseline_mse"])


def test_log_axis_only_for_errors_falling_towards_zero():
    from matplotlib.figure import Figure

    falling, rising = Figure().subplots(), Figure().subplots()
    plots._scale(falling, [np.geomspace(1.0, 1e-3, 10)])
    plots._scale(rising, [np.geomspace(1e-3, 1.0, 10)])  # an accuracy rising from 0.001
    assert (falling.get_yscale(), rising.get_yscale()) == ("log", "linear")


def test_bad_inputs_say_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match=r"`records` must hold at least one logged step"):
        plots.training_curve([], tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match=r"`curves` must name at least one model"):
        plots.gradient_norm_curves({}, tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match=r"one row per label \(3 labels\)\. Received: vectors.shape=\(4, 2\)"):
        plots.dendrogram(np.zeros((4, 2)), list("abc"), tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match=r"must be finite\. Received: NaN or infinity in the rows of \['b'\]"):
        plots.dendrogram(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]), list("abc"), tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match=r"same length\. Received: 5 and 4"):
        plots.forecast_vs_truth(np.zeros(5), np.zeros(4), tmp_path / "x.png", "t")
    assert not (tmp_path / "x.png").exists()


# -- run folders --------------------------------------------------------------------------


def test_read_metrics_keeps_the_last_record_of_each_step(tmp_path):
    lines = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 3, "loss": 9.0},
             {"step": 3, "loss": 1.5}, {"step": 4, "loss": 1.0}]  # resumed from the step-2 checkpoint
    _write_run(tmp_path / "run", lines, {})
    assert [r["loss"] for r in plots.read_metrics(tmp_path / "run")] == [3.0, 2.0, 1.5, 1.0]


def test_a_missing_run_folder_is_said_in_the_card_and_nothing_is_drawn(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No training log at .*gone.metrics\.jsonl: the run folder was not"):
        plots.read_metrics(tmp_path / "gone")
    config = {"model": "binary_adder", "steps": 40, "out_dir": str(tmp_path / "gone")}
    folder = tmp_path / "models" / "binary_adder"
    figures, missing = plots.draw_card_figures(recipe_for("binary_adder", **config), folder, None)
    assert figures == {}
    assert missing == {"training_curve": f"not drawn: the run folder {tmp_path / 'gone'} does not exist: "
                                         "it was deleted, or the model was trained elsewhere"}
    assert not (tmp_path / "models").exists()


def test_a_run_folder_holding_another_or_unfinished_run_is_not_drawn(tmp_path):
    config = {"model": "binary_adder", "steps": 40, "batch_size": 64, "out_dir": str(tmp_path / "run")}
    _write_run(tmp_path / "run", _task_records(), {**config, "batch_size": 128})
    assert plots.run_mismatch(tmp_path / "run", config) == (
        f"{tmp_path / 'run'} holds another run than the shipped model (batch_size: card 64, run 128)")
    _, missing = plots.draw_card_figures(recipe_for("binary_adder", **config), tmp_path / "card", None)
    assert "holds another run" in missing["training_curve"] and not (tmp_path / "card").exists()
    assert plots.run_mismatch(tmp_path / "run", {**config, "batch_size": 128}) is None
    unfinished = {**config, "steps": 50, "out_dir": str(tmp_path / "unfinished")}
    _write_run(tmp_path / "unfinished", _task_records(steps=40), unfinished)  # stopped, or still running
    assert plots.run_mismatch(tmp_path / "unfinished", unfinished) == (
        f"{tmp_path / 'unfinished'} logs 40 of the recipe's 50 steps: the run did not finish")


# -- task figures ---------------------------------------------------------------------------


@pytest.mark.slow
def test_adding_figure_holds_every_shipped_adding_model_on_one_batch(tmp_path, monkeypatch):
    import zoo

    models = tmp_path / "models"
    (models / "adding_gru").mkdir(parents=True)
    sibling = zoo.get("adding_gru", units=4)
    sibling(np.zeros((1, 20, 2), np.float32))
    sibling.save(models / "adding_gru" / "adding_gru.keras")  # adding_lstm is not shipped: left out
    published = zoo.get("adding_elman", units=4)
    drawn = {}
    real = plots.gradient_norm_curves
    monkeypatch.setattr(plots, "gradient_norm_curves", lambda curves, path, title: drawn.update(curves) or
                        real(curves, path, title))
    config = {"model": "adding_elman", "length": 20, "batch_size": 8, "out_dir": str(tmp_path / "no_run")}
    figures, missing = plots.draw_card_figures(recipe_for("adding_elman", **config), models / "adding_elman", published)
    assert figures == {"gradient_norms": "gradient_norms.png", **MEMORY_FIGURES} and "training_curve" in missing
    assert sorted(drawn) == ["adding_elman", "adding_gru"]
    assert all(curve.shape == (20,) and np.all(curve >= 0) for curve in drawn.values())
    _check_png(models / "adding_elman" / "gradient_norms.png", (640, 380))


def test_elman_dendrogram_has_one_leaf_per_word(tmp_path, monkeypatch):
    import zoo
    from training.data.elman_grammar import WORDS

    drawn = {}
    real = plots.dendrogram
    monkeypatch.setattr(plots, "dendrogram", lambda vectors, labels, path, title: drawn.update(
        shape=vectors.shape, labels=labels) or real(vectors, labels, path, title))
    config = {"model": "elman_grammar", "test_sentences": 300, "out_dir": ""}  # enough to use all 29 words
    model = zoo.get("elman_grammar", units=5)
    figures, _ = plots.draw_card_figures(recipe_for("elman_grammar", **config), tmp_path, model)
    assert figures == {"dendrogram": "dendrogram.png", **MEMORY_FIGURES}
    assert drawn == {"shape": (29, 5), "labels": WORDS}
    _check_png(tmp_path / "dendrogram.png", (900, 400))


@pytest.mark.slow
def test_esn_forecast_is_the_measured_test_prediction(tmp_path, monkeypatch):
    from training.recipes import fit_esn

    recipe = recipe_for("esn_mackey_glass", series_length=600, overrides={"units": 30})
    model, metrics = fit_esn(recipe)
    drawn = {}
    real = plots.forecast_vs_truth
    monkeypatch.setattr(plots, "forecast_vs_truth", lambda truth, predicted, path, title: drawn.update(
        truth=truth, predicted=predicted) or real(truth, predicted, path, title))
    config = json.loads(recipe.to_json())
    figures, missing = plots.draw_card_figures(recipe_for("esn_mackey_glass", **config), tmp_path, model)
    assert figures == {"forecast": "forecast.png", **MEMORY_FIGURES} and missing["training_curve"].startswith("none: ")
    np.testing.assert_array_equal(drawn["truth"], recipe.split()[3])
    rmse = np.sqrt(np.mean((np.ravel(drawn["predicted"]) - np.ravel(drawn["truth"])) ** 2))
    assert rmse == pytest.approx(metrics["rmse"], rel=1e-9)
    _check_png(tmp_path / "forecast.png", (800, 450))


# -- publishing and the command line ----------------------------------------------------------


def _published_adder(tmp_path):
    from training.publish import publish
    from training.recipes import recipe_for

    recipe = recipe_for("binary_adder", steps=20, batch_size=8, eval_every=10, checkpoint_every=10, train_bits=4,
                        test_sums=20, out_dir=str(tmp_path / "run"), overrides={"units": 3})
    model, metrics = recipe.train(verbose=0)
    publish(model, recipe, metrics, models_dir=tmp_path / "models")
    return tmp_path / "models" / "binary_adder"


@pytest.mark.slow
def test_publish_draws_the_figures_and_the_command_redraws_them(tmp_path, capsys):
    folder = _published_adder(tmp_path)
    card = json.loads((folder / "card.json").read_text())
    assert card["figures"] == {"training_curve": "training_curve.png", **MEMORY_FIGURES}
    assert "figures_missing" not in card
    _check_png(folder / "jacobian_norms.png", (640, 380))
    _check_png(folder / "training_curve.png", (900, 340))

    (folder / "training_curve.png").unlink()
    assert plots.main(["binary_adder", "--models-dir", str(tmp_path / "models")]) == 0
    assert json.loads((folder / "card.json").read_text()) == card
    _check_png(folder / "training_curve.png", (900, 340))

    (tmp_path / "run" / "config.json").write_text("{}")  # the run folder now holds another run
    assert plots.main(["binary_adder", "--models-dir", str(tmp_path / "models")]) == 0
    assert json.loads((folder / "card.json").read_text()) == card  # the curve drawn at publishing stays

    (folder / "training_curve.png").unlink()
    assert plots.main(["binary_adder", "--models-dir", str(tmp_path / "models")]) == 0
    redrawn = json.loads((folder / "card.json").read_text())
    assert redrawn["figures"] == MEMORY_FIGURES
    assert "holds another run" in redrawn["figures_missing"]["training_curve"]
    assert not (folder / "training_curve.png").exists()
    assert {k: v for k, v in redrawn.items() if not k.startswith("figures")} == {
        k: v for k, v in card.items() if not k.startswith("figures")}
    assert '"binary_adder": {"figures": {"eigenvalues"' in capsys.readouterr().out


def test_publish_without_matplotlib_says_so_in_the_card(monkeypatch):
    import training
    from training import publish

    monkeypatch.delattr(training, "plots")
    monkeypatch.delitem(sys.modules, "training.plots")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what an install without matplotlib raises
    card = publish._with_figures({"recipe": {"config": {}}}, recipe_for("binary_adder"), None, None)
    assert card["figures"] == {} and card["figures_missing"]["all"].startswith(
        "matplotlib is not installed: pip install -e '.[dev]', then python -m training.plots binary_adder")


def test_redraw_needs_a_published_model(tmp_path):
    with pytest.raises(ValueError, match=r"Cannot draw the figures of 'binary_adder': .*card\.json is missing"):
        plots.redraw("binary_adder", tmp_path)
