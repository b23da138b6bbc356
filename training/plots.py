"""Figures for the model cards: PNGs written next to `card.json`.

Every published gradient-trained model gets its training curve, read from the
`metrics.jsonl` of its run folder (the card's `recipe.config.out_dir`); a
recipe adds the figures its task is judged by (`Recipe.figures`), drawn with
the functions here: the gradient reaching each input step (`gradient_norm_curves`,
the adding problem), the dendrogram of hidden states (`dendrogram`, Elman's
grammar), a forecast against the truth (`forecast_vs_truth`, the ESN).

`training.publish` draws them when it publishes; to redraw a shipped model's
figures from its card, its `.keras` file and its run folder:

    python -m training.plots NAME [NAME ...] [--models-dir DIR]

Every recurrent model's card also shows its eigenvalue picture (`zoo.diagnostics`, on its recipe's
`diagnostic_inputs`): the recurrent matrices' eigenvalues against the unit circle and the Jacobian-product norm
against the lag. Several models of one task side by side (README's figure):

    python -m training.plots adding_elman adding_lstm --compare docs/memory_adding.png

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
           "forecast_vs_truth", "cycle_error", "eigenvalue_planes", "jacobian_norm_curves", "memory_comparison",
           "memory_figures", "draw_card_figures", "with_figures", "redraw", "compare"]

DPI = 100
# Logged beside the loss but not learning curves: wall and CPU time, and the loss restated in bits.
_BOOKKEEPING = {"step", "seconds", "cpu_seconds", "segment_start", "loss", "bpc"}
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


def _log_curves(curves, path, title, xlabel, ylabel, what, title_size):
    """One line per curve (name -> values), against its index, log y; the figures of the gradient families."""
    if not curves:
        raise ValueError(f"`curves` must name at least one {what}. Received: curves={{}}")
    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    axes = figure.subplots()
    for name, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        axes.plot(np.arange(len(values)), np.maximum(values, 1e-300), label=name, linewidth=1.2)
    axes.set_yscale("log")  # these norms shrink or grow geometrically along the sequence
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes.title.set_fontsize(title_size)
    axes.legend(fontsize=8)
    return _save(figure, path)


def gradient_norm_curves(curves, path, title):
    """Writes ‖∂L/∂x(t)‖ against t for each model of `curves` (name -> (T,) array), log y, to `path`."""
    # Elman's gradient falls by ~1e-14 over 200 steps; the gated ones stay within 1e-1.
    return _log_curves(curves, path, title, "input step t", "mean ‖∂L/∂x(t)‖", "model's gradient norms", 10)


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


def cycle_error(squared, phases, path, title, period=12):
    """Writes Elman's Figure 1: the squared error at each step of a `period`-step cycle, averaged over cycles.

    `squared` (T,) per-step errors, `phases` (T,) the phase of the triple at each step (2: predictable).
    """
    squared, phases = np.asarray(squared, np.float64), np.asarray(phases)
    cycles = len(squared) // period
    if cycles < 1:
        raise ValueError(f"`squared` must cover at least one cycle of {period} steps. Received: {len(squared)} steps")
    mean = squared[: cycles * period].reshape(cycles, period).mean(axis=0)
    figure = Figure(figsize=(6.4, 3.4), layout="constrained")
    axes = figure.subplots()
    colours = ["C3" if phase == 2 else "C0" for phase in phases[:period]]
    axes.bar(np.arange(period), mean, color=colours)
    axes.axhline(0.25, color="grey", linestyle="--", linewidth=1, label="chance (probability 0.5)")
    axes.set(xlabel=f"step within a cycle of {period} (red: the XOR bit, predictable)",
             ylabel=f"squared error, mean of {cycles} cycles", title=title)
    axes.title.set_fontsize(9)
    axes.legend(fontsize=8)
    return _save(figure, path)


def eigenvalue_planes(eigenvalues, path, title):
    """Writes the eigenvalues of each recurrent matrix (name -> complex (H,)) on the complex plane with the unit
    circle, one panel per recurrent layer (the name's part before the last '/'), to `path`."""
    if not eigenvalues:
        raise ValueError("`eigenvalues` must name at least one matrix. Received: eigenvalues={}")
    layers = {}
    for name, values in eigenvalues.items():
        layer, _, block = name.rpartition("/")
        layers.setdefault(layer or name, {})[block] = np.asarray(values)
    figure = Figure(figsize=(max(5.5, 3.3 * len(layers) + 0.4), 3.8), layout="constrained")
    panels = figure.subplots(1, len(layers), squeeze=False)[0]
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200))
    for axes, (layer, blocks) in zip(panels, layers.items()):
        axes.plot(circle.real, circle.imag, color="grey", linewidth=0.8)
        for index, (block, values) in enumerate(blocks.items()):
            axes.scatter(values.real, values.imag, s=8, color=f"C{index}", label=f"{block} (max |λ| "
                         f"{np.abs(values).max():.2f})")
        axes.set_aspect("equal")
        axes.set(xlabel="Re λ", ylabel="Im λ", title=layer)
        axes.title.set_fontsize(9)
        axes.legend(fontsize=7, loc="lower left")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def jacobian_norm_curves(curves, path, title):
    """Writes ‖∂h(t₀+k)/∂s(t₀)‖₂ against k for each curve (name -> (K+1,) array), log y, to `path`."""
    return _log_curves(curves, path, title, "lag k (steps)", "‖∂h(t₀+k)/∂s(t₀)‖₂, geometric mean",
                       "Jacobian-norm curve", 9)


def memory_comparison(models, inputs, path, title, max_lag=100):
    """Writes, for any models reading the same `inputs` (name -> model), the Jacobian-norm curves of every
    recurrent layer on one axis (left) and the moduli of every recurrent matrix's eigenvalues (right).

    The README's comparison (the Elman net against the LSTM on the adding problem); any list of models.
    """
    from zoo import diagnostics

    if not models:
        raise ValueError("`models` must name at least one model. Received: models={}")
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = figure.subplots(1, 2)
    for index, (name, model) in enumerate(models.items()):
        for layer, norms in diagnostics.jacobian_norms(model, inputs, max_lag=max_lag).items():
            left.plot(np.arange(len(norms)), np.maximum(norms, 1e-300), color=f"C{index}", label=f"{name} {layer}")
        for block, values in diagnostics.recurrent_eigenvalues(model).items():
            moduli = np.sort(np.abs(values))[::-1]
            right.plot(np.arange(1, len(moduli) + 1), moduli, color=f"C{index}", linewidth=0.9,
                       label=f"{name} {block}")
    left.set_yscale("log")
    left.set(xlabel="lag k (steps)", ylabel="‖∂h(t₀+k)/∂s(t₀)‖₂", title="Jacobian product on held-out inputs")
    right.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    right.set(xlabel="eigenvalue rank", ylabel="|λ|", title="recurrent matrices' eigenvalues against |λ| = 1")
    for axes in (left, right):
        axes.title.set_fontsize(9)
        axes.legend(fontsize=6)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def memory_figures(model, inputs, folder, name):
    """The eigenvalue picture of `model` on `inputs` (`zoo.diagnostics`): figure name -> file name in `folder`."""
    from zoo import diagnostics

    eigenvalues = diagnostics.recurrent_eigenvalues(model)
    curves = diagnostics.jacobian_norms(model, inputs)
    folder = pathlib.Path(folder)
    return {
        "eigenvalues": eigenvalue_planes(eigenvalues, folder / "eigenvalues.png",
                                         f"{name}: eigenvalues of the recurrent matrices").name,
        "jacobian_norms": jacobian_norm_curves(curves, folder / "jacobian_norms.png",
                                               f"{name}: how far a change of the state reaches (held-out inputs)").name,
    }


# -- the card ---------------------------------------------------------------------------


def _curve_figure(recipe, folder):
    """(file name, None) when the training curve was drawn, else (None, why not)."""
    run_dir = recipe.training_log()
    if not run_dir:
        return None, "none: the model is fitted in closed form, there are no updates to plot"
    try:
        why = run_mismatch(run_dir, json.loads(recipe.to_json()))
        if why is None:
            path = training_curve(read_metrics(run_dir), folder / "training_curve.png", f"{recipe.model} ({run_dir})")
            return path.name, None
    except FileNotFoundError as error:
        why = str(error)
    return None, f"not drawn: {why}"


def draw_card_figures(recipe, folder, model):
    """Draws the card figures of `model`, trained by `recipe`, into `folder`; returns (figures, missing).

    Args:
        recipe: the model's recipe (`training.recipes`), as it trained the model.
        folder: the model's folder in the models directory (beside its card.json);
            adding models also read their siblings' `.keras` files from its parent.
        model: the trained model.

    Returns:
        `figures`, figure name -> file name in `folder`, and `missing`, figure
        name -> why it was not drawn.
    """
    folder = pathlib.Path(folder)
    figures, missing = {}, {}
    drawn, why = _curve_figure(recipe, folder)
    if drawn:
        figures["training_curve"] = drawn
    else:
        missing["training_curve"] = why
    figures.update(recipe.figures(model, folder))
    inputs = recipe.diagnostic_inputs(model) if model is not None else None
    if inputs is not None:  # a recurrent model: its eigenvalue picture
        figures.update(memory_figures(model, inputs, folder, recipe.model))
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
    from zoo._registry import artifact_dir, write_card

    folder = pathlib.Path(models_dir) / name if models_dir else artifact_dir(name)
    card_file, keras_file = folder / "card.json", folder / f"{name}.keras"
    for required in (card_file, keras_file):
        if not required.is_file():
            raise ValueError(f"Cannot draw the figures of {name!r}: {required} is missing. Expected a model "
                             "published by `python -m training train NAME --publish`.")
    card = json.loads(card_file.read_text())
    from training.recipes import recipe_for

    recipe = recipe_for(name, **card["recipe"]["config"])
    figures, missing = draw_card_figures(recipe, folder, zoo.get(name, weights=str(keras_file)))
    # A figure drawn when the model was published, from a run folder gone since (a fresh clone has no runs/),
    # is still the shipped model's: it stays rather than being listed as missing.
    kept = {key: file for key, file in card.get("figures", {}).items() if key in missing and (folder / file).is_file()}
    figures.update(kept)
    missing = {key: why for key, why in missing.items() if key not in kept}
    card = with_figures(card, figures, missing)
    write_card(folder, card)
    return card


def compare(names, path, models_dir=None, max_lag=150):
    """Draws `memory_comparison` of the shipped models `names` (one task: the first one's recipe gives the
    held-out inputs) into `path`; returns the path."""
    import zoo
    from training.recipes import recipe_for
    from zoo._registry import artifact_dir

    models = {}
    for name in names:
        folder = pathlib.Path(models_dir) / name if models_dir else artifact_dir(name)
        models[name] = zoo.get(name, weights=str(folder / f"{name}.keras"))
    recipe = recipe_for(names[0])
    inputs = recipe.diagnostic_inputs(models[names[0]])
    title = f"memory of {', '.join(names)} on {names[0]}'s held-out inputs ({len(inputs)} sequences)"
    return memory_comparison(models, inputs, path, title, max_lag=max_lag)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.plots", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", metavar="NAME", help="shipped models whose figures to redraw")
    parser.add_argument("--models-dir", default=None, help="default: $RNN_ZOO_MODELS or saved_models/")
    parser.add_argument("--compare", metavar="PNG", default=None,
                        help="instead, draw the eigenvalue picture of NAMEs (one task) side by side into PNG")
    args = parser.parse_args(argv)
    if args.compare:
        print(compare(args.names, args.compare, args.models_dir))
        return 0
    for name in args.names:
        card = redraw(name, args.models_dir)
        print(json.dumps({name: {"figures": card["figures"], "figures_missing": card.get("figures_missing", {})}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
