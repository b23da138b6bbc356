"""Figures for the model cards: PNGs written next to `card.json`.

Every published model gets its training curve, read from the `metrics.jsonl`
of its run folder (the card's `recipe.config.out_dir`); three tasks add the
figure their row is judged by:

| model | figure |
|---|---|
| `adding_*` | ‖∂L/∂x(t)‖ against t on one fixed batch, every shipped adding model on one log axis |
| `elman_grammar` | dendrogram of the per-word mean hidden states (Elman 1990, Figure 7) |
| `esn_mackey_glass` | one-step forecast against the truth on the test part, and its error |

`training.publish` draws them when it publishes; to redraw a shipped model's
figures from its card, its `.keras` file and its run folder:

    python -m training.plots NAME [NAME ...] [--models-dir DIR]

The card lists the files under `figures` (name -> file) and says under
`figures_missing` why a figure could not be drawn (no run folder, a run folder
holding another run), rather than drawing a curve from the wrong log.

matplotlib's object-oriented API renders with Agg into files only: no display,
no pyplot, no global backend switched for the caller. 100 dpi and a 256-colour
palette keep a figure at a few tens of kB.
"""

import argparse
import io
import json
import pathlib
import sys

import numpy as np
from matplotlib.figure import Figure

__all__ = ["read_metrics", "run_mismatch", "curve_series", "training_curve", "gradient_norm_curves", "dendrogram",
           "forecast_vs_truth", "draw_card_figures", "with_figures", "redraw"]

DPI = 100
ADDING = ("adding_lstm", "adding_gru", "adding_elman")  # the three curves of the adding row's figure
# Logged beside the loss but not learning curves: wall and CPU time, and the loss restated in bits.
_BOOKKEEPING = {"step", "seconds", "cpu_seconds", "loss", "bpc"}
# Recipe constants logged with each evaluation; drawn as dashed lines, the bar the curve is read against.
_REFERENCES = ("causal_ceiling", "mean_baseline_mse")


def _save(figure, path):
    """Writes `figure` to the PNG `path` with a 256-colour palette; returns the path."""
    from PIL import Image  # matplotlib's own dependency

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=DPI, format="png")
    # A few flat colours and their anti-aliased edges: a palette halves the file, with no visible change.
    image = Image.open(buffer).convert("RGB").quantize(colors=256)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
    return path


def _scale(axes, series):
    """Log y for errors falling towards 0: every series ends below its start, all positive, spanning > 30x.

    An accuracy rising from 0.001 to 1 spans as much, but reads better on a linear axis.
    """
    series = [np.asarray(s, dtype=np.float64) for s in series if len(s)]
    values = np.concatenate(series) if series else np.array([])
    falling = all(s[-1] < s[0] for s in series)
    if values.size and falling and values.min() > 0 and values.max() / values.min() > 30:
        axes.set_yscale("log")


# -- training curves ---------------------------------------------------------------


def read_metrics(run_dir):
    """The records of `<run_dir>/metrics.jsonl`, one per step, in step order.

    A run resumed from a checkpoint logs again the steps after that checkpoint;
    the later record of a step is the one the finished run went through.

    Raises:
        FileNotFoundError: the run folder or its log is missing.
    """
    path = pathlib.Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"No training log at {path}: the run folder was not kept or holds no metrics. Expected the "
            "metrics.jsonl that training.runs.MetricsLog writes during `python -m training train`."
        )
    by_step = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[record["step"]] = record
    if not by_step:
        raise FileNotFoundError(f"The training log {path} is empty: the run logged no step.")
    return [by_step[step] for step in sorted(by_step)]


def run_mismatch(run_dir, config):
    """Why the run folder is not the run of `config` (the card's recipe config), or None when it is.

    A run folder is reused by the next run of the same model, so its log may
    belong to a newer or unfinished run than the shipped one.
    """
    if not pathlib.Path(run_dir).is_dir():
        return f"the run folder {run_dir} does not exist: it was deleted, or the model was trained elsewhere"
    path = pathlib.Path(run_dir) / "config.json"
    if not path.is_file():
        return f"{path} is missing, so the log cannot be matched to the shipped model's recipe"
    logged = json.loads(path.read_text())
    differ = sorted(key for key in set(config) | set(logged) if config.get(key) != logged.get(key))
    if differ:
        pairs = ", ".join(f"{key}: card {config.get(key)!r}, run {logged.get(key)!r}" for key in differ)
        return f"{run_dir} holds another run than the shipped model ({pairs})"
    last = read_metrics(run_dir)[-1]["step"]
    if "steps" in config and last != config["steps"]:
        return f"{run_dir} logs {last} of the recipe's {config['steps']} steps: the run did not finish"
    return None


def curve_series(records):
    """The series of the two panels: (loss label, loss keys, evaluation keys, reference keys).

    Character runs log bits per character (`bpc`, and `val_bpc` at each
    validation pass); task runs log the loss and, every `eval_every` steps,
    the figures of their recipe's `evaluate` on held-out data.
    """
    keys = {key for record in records for key in record}
    if "bpc" in keys:
        loss_label, loss_keys = "bits per character", ["bpc"] + (["val_bpc"] if "val_bpc" in keys else [])
    else:
        loss_label, loss_keys = "loss", ["loss"] + sorted(k for k in keys if k.startswith("val_"))
    references = [key for key in _REFERENCES if key in keys]
    evaluation = sorted(keys - _BOOKKEEPING - set(references) - {k for k in keys if k.startswith("val_")})
    return loss_label, loss_keys, evaluation, references


def _series(records, key):
    pairs = [(r["step"], r[key]) for r in records if key in r]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs], dtype=np.float64)


def _plot_loss(axes, records, label, keys):
    steps, loss = _series(records, keys[0])
    window = max(1, len(loss) // 50)  # the per-update loss is noisy: a running mean shows the trend
    axes.plot(steps, loss, color="C0", alpha=0.3, linewidth=0.6)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    axes.plot(steps[window - 1:], smooth, color="C0", label=f"{keys[0]} (mean of {window} updates)")
    for index, key in enumerate(keys[1:], start=1):
        axes.plot(*_series(records, key), "o-", color=f"C{index}", markersize=3, label=key)
    _scale(axes, [loss] + [_series(records, key)[1] for key in keys[1:]])
    axes.set_title("training", fontsize=10)
    axes.set(xlabel="update", ylabel=label)
    axes.legend(fontsize=8)


def _plot_evaluation(axes, records, keys, references):
    values = []
    for index, key in enumerate(keys):
        steps, value = _series(records, key)
        axes.plot(steps, value, "o-", color=f"C{index}", markersize=3, label=key)
        values.append(value)
    for key in references:
        axes.axhline(_series(records, key)[1][-1], color="grey", linestyle="--", linewidth=1, label=key)
    _scale(axes, values)
    axes.set_title("held-out figures (recipe's evaluate)", fontsize=10)
    axes.set(xlabel="update")
    axes.legend(fontsize=8)


def training_curve(records, path, title):
    """Writes the training curve of a run's `records` (see `read_metrics`) to the PNG `path`.

    Left: the loss per update and its running mean (bits per character for
    character runs, with validation passes). Right, when the run logged any:
    the held-out figures at each evaluation, with the recipe's reference
    constants dashed.
    """
    if not records:
        raise ValueError(f"`records` must hold at least one logged step. Received: records={records!r}")
    loss_label, loss_keys, evaluation, references = curve_series(records)
    figure = Figure(figsize=(9, 3.4) if evaluation else (5.5, 3.4), layout="constrained")
    panels = figure.subplots(1, 2 if evaluation else 1, squeeze=False)[0]
    _plot_loss(panels[0], records, loss_label, loss_keys)
    if evaluation:
        _plot_evaluation(panels[1], records, evaluation, references)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


# -- task figures ----------------------------------------------------------------------


def gradient_norm_curves(curves, path, title):
    """Writes ‖∂L/∂x(t)‖ against t for each model of `curves` (name -> (T,) array), log y, to `path`."""
    if not curves:
        raise ValueError("`curves` must name at least one model's gradient norms. Received: curves={}")
    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    axes = figure.subplots()
    for name, norms in curves.items():
        norms = np.asarray(norms, dtype=np.float64)
        axes.plot(np.arange(len(norms)), norms, label=name, linewidth=1.2)
    axes.set_yscale("log")  # Elman's gradient falls by ~1e-14 over 200 steps; the gated ones stay within 1e-1
    axes.set(xlabel="input step t", ylabel="mean ‖∂L/∂x(t)‖", title=title)
    axes.title.set_fontsize(10)
    axes.legend(fontsize=8)
    return _save(figure, path)


def dendrogram(vectors, labels, path, title):
    """Writes the average-linkage dendrogram of `vectors` (N, H), leaves named by `labels`, to `path`.

    Average linkage on Euclidean distance is the clustering `benchmarks.quality`
    checks the word classes against, so the figure shows the tree that was scored.
    """
    from scipy.cluster.hierarchy import dendrogram as draw
    from scipy.cluster.hierarchy import linkage

    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise ValueError(f"`vectors` must be (N, H) with one row per label ({len(labels)} labels). "
                         f"Received: vectors.shape={vectors.shape}")
    unfinished = [label for label, row in zip(labels, vectors) if not np.all(np.isfinite(row))]
    if unfinished:  # e.g. the mean hidden state of a word the corpus never used
        raise ValueError(f"`vectors` must be finite. Received: NaN or infinity in the rows of {unfinished}")
    figure = Figure(figsize=(9, 4), layout="constrained")
    axes = figure.subplots()
    draw(linkage(vectors, "average"), labels=list(labels), ax=axes, leaf_rotation=90, leaf_font_size=8)
    axes.set(ylabel="distance (average linkage)", title=title)
    axes.title.set_fontsize(10)
    return _save(figure, path)


def forecast_vs_truth(truth, predicted, path, title):
    """Writes a one-step forecast against the truth (both (T,)) and its error below, to `path`."""
    truth, predicted = np.ravel(truth).astype(np.float64), np.ravel(predicted).astype(np.float64)
    if truth.shape != predicted.shape:
        raise ValueError(f"`truth` and `predicted` must have the same length. Received: {truth.size} and "
                         f"{predicted.size}")
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    steps = np.arange(truth.size)
    top.plot(steps, truth, color="black", linewidth=1.6, label="truth")
    top.plot(steps, predicted, color="C1", linewidth=0.9, linestyle="--", label="forecast")
    top.set(ylabel="x(t)", title=title)
    top.title.set_fontsize(10)
    top.legend(fontsize=8)
    bottom.plot(steps, predicted - truth, color="C3", linewidth=0.8)
    bottom.axhline(0, color="grey", linewidth=0.6)
    bottom.set(xlabel="test step", ylabel="forecast − truth")
    return _save(figure, path)


def _adding_figure(name, model, recipe, folder):
    """All shipped adding models on the batch of `recipe` (the model being published replaces its own file)."""
    import zoo

    models = {}
    for other in ADDING:
        shipped = folder.parent / other / f"{other}.keras"
        if other == name:
            models[other] = model
        elif shipped.is_file():
            models[other] = zoo.get(other, weights=str(shipped))
    curves = {other: recipe.input_gradient_norms(m) for other, m in models.items()}
    title = (f"adding problem, T = {recipe.length}: gradient reaching each input "
             f"(batch of {recipe.batch_size}, seed {recipe.seed})")
    return gradient_norm_curves(curves, folder / "gradient_norms.png", title)


def _elman_figure(name, model, recipe, folder):
    from training.data.elman_grammar import WORDS

    means = recipe.word_hidden_means(model)
    title = f"{name}: per-word mean hidden state over {recipe.test_sentences:,} test sentences"
    return dendrogram(means, WORDS, folder / "dendrogram.png", title)


def _esn_figure(name, model, recipe, folder):
    u_train, _, u_test, y_test = recipe.split()
    _, final = model.states(u_train[None])  # the test part runs on from the state the training part left
    predicted = np.asarray(model(u_test[None], initial_state=final))[0]
    rmse = float(np.sqrt(np.mean((predicted - y_test) ** 2)))
    title = f"{name}: one-step forecast on the last {len(y_test)} samples (RMSE {rmse:.5f})"
    return forecast_vs_truth(y_test, predicted, folder / "forecast.png", title)


# name -> (card key, figure function(name, model, recipe, folder) -> written path)
_TASK_FIGURES = {
    **{name: ("gradient_norms", _adding_figure) for name in ADDING},
    "elman_grammar": ("dendrogram", _elman_figure),
    "esn_mackey_glass": ("forecast", _esn_figure),
}


# -- the card ---------------------------------------------------------------------------


def _curve_figure(name, config, folder):
    """(file name, None) when the training curve was drawn, else (None, why not)."""
    run_dir = config.get("out_dir")
    if not run_dir:
        return None, "none: the model is fitted in closed form, there are no updates to plot"
    try:
        why = run_mismatch(run_dir, config)
        if why is None:
            path = training_curve(read_metrics(run_dir), folder / "training_curve.png", f"{name} ({run_dir})")
            return path.name, None
    except FileNotFoundError as error:
        why = str(error)
    return None, f"not drawn: {why}"


def draw_card_figures(name, folder, config, model):
    """Draws the figures of the model `name` into `folder`; returns (figures, missing).

    Args:
        name: the registered name.
        folder: the model's folder in the models directory (beside its card.json);
            adding models also read their siblings' `.keras` files from its parent.
        config: the card's recipe config (dict); `out_dir` names the run folder.
        model: the trained model.

    Returns:
        `figures`, figure name -> file name in `folder`, and `missing`, figure
        name -> why it was not drawn.
    """
    folder = pathlib.Path(folder)
    figures, missing = {}, {}
    drawn, why = _curve_figure(name, config, folder)
    if drawn:
        figures["training_curve"] = drawn
    else:
        missing["training_curve"] = why
    if name in _TASK_FIGURES:
        from training.recipes import recipe_for

        key, draw = _TASK_FIGURES[name]
        figures[key] = draw(name, model, recipe_for(name, **config), folder).name
    return figures, missing


def with_figures(card, figures, missing):
    """`card` listing `figures`, and `figures_missing` only when something could not be drawn."""
    card = {key: value for key, value in card.items() if key not in ("figures", "figures_missing")}
    card["figures"] = figures
    if missing:
        card["figures_missing"] = missing
    return card


def redraw(name, models_dir=None):
    """Redraws the figures of the shipped model `name` and lists them in its card; returns the card.

    Raises:
        ValueError: the model has no card or no `.keras` file in the models directory.
    """
    import zoo
    from zoo._registry import artifact_dir

    folder = pathlib.Path(models_dir) / name if models_dir else artifact_dir(name)
    card_file, keras_file = folder / "card.json", folder / f"{name}.keras"
    for required in (card_file, keras_file):
        if not required.is_file():
            raise ValueError(f"Cannot draw the figures of {name!r}: {required} is missing. Expected a model "
                             "published by `python -m training train NAME --publish`.")
    card = json.loads(card_file.read_text())
    figures, missing = draw_card_figures(name, folder, card["recipe"]["config"], zoo.get(name, weights=str(keras_file)))
    card = with_figures(card, figures, missing)
    card_file.write_text(json.dumps(card, indent=2, sort_keys=True))
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.plots", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", metavar="NAME", help="shipped models whose figures to redraw")
    parser.add_argument("--models-dir", default=None, help="default: $RNN_ZOO_MODELS or saved_models/")
    args = parser.parse_args(argv)
    for name in args.names:
        card = redraw(name, args.models_dir)
        print(json.dumps({name: {"figures": card["figures"], "figures_missing": card.get("figures_missing", {})}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
