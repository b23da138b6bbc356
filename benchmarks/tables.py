"""Renders the tables of README.md and BENCHMARKS.md from `benchmarks/results/*.json`.

    python -m benchmarks.tables              # print every table
    python -m benchmarks.tables --write      # rewrite them in README.md and BENCHMARKS.md
    python -m benchmarks.tables --check      # exit 1 where a file disagrees with the results

A generated table sits between two markers, invisible once rendered:

    <!-- table: serving_latency -->
    ...
    <!-- end table -->

where the name is a key of `TABLES`. Only the tables are generated; the prose
around them quotes figures too, so re-read it when a results file changes.
`tests/test_docs_tables.py` runs the check, so a results file committed
without its tables fails the suite.
"""

import argparse
import functools
import json
import pathlib
import re
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ("README.md", "BENCHMARKS.md")
BEGIN = re.compile(r"^<!-- table: (?P<name>[^ ]*) -->$", re.MULTILINE)
END = "<!-- end table -->"
FAMILIES = {"elman": "Elman", "lstm": "LSTM", "gru": "GRU"}


def _load(results, name):
    return json.loads((pathlib.Path(results) / f"{name}.json").read_text())


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _short(x):
    """Two significant digits: 0.68, 9.2e-3 (NRMSE spans several decades)."""
    if abs(x) >= 0.01:
        return f"{x:.2g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _g(x):
    """`{:g}` without the exponent's padding: 1e-8, not 1e-08."""
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m[1].replace("+", "") + m[2], f"{x:g}")


def quality(results):
    """README's model zoo table, as `python -m benchmarks.quality --table` prints it."""
    from benchmarks.quality import markdown_table

    return markdown_table(_load(results, "quality"))


def layers(results):
    """Training throughput against Keras: the CPU run with the GPU run's ratios beside each shape."""
    cpu = _load(results, "layers_tensorflow_cpu")
    gpu = {(r["family"], r["batch"], r["units"]): r for r in _load(results, "layers_jax_gpu")["rows"]}
    header = ["layer", "B", "H", "CPU zoo tok/s", "CPU Keras tok/s", "**CPU ratio**", "CPU ratio, min–max over rounds",
              "CPU % of matmul peak", "**GPU ratio**", "GPU ratio vs Keras default (cuDNN)", "GPU % of matmul peak"]
    rows = []
    for r in cpu["rows"]:
        g = gpu.get((r["family"], r["batch"], r["units"]))
        low, high = r["ratio_min_max_over_rounds"]
        rows.append([
            FAMILIES[r["family"]], str(r["batch"]), str(r["units"]),
            f"{r['zoo_tokens_per_s']:,.0f}", f"{r['keras_tokens_per_s']:,.0f}", f"**{r['ratio']:.2f}**",
            f"{low:.2f}–{high:.2f}", f"{r['fraction_of_matmul_peak']:.0%}",
            f"**{g['ratio']:.2f}**" if g else "—",
            f"{g['ratio_vs_cudnn']:.2f}" if g and "ratio_vs_cudnn" in g else "—",
            f"{g['fraction_of_matmul_peak']:.1%}" if g else "—",
        ])
    return _table(header, rows)


def loop_ab(results):
    """The fused loop against the autodiff loop: Keras time / zoo time, CPU and wall."""
    rows = sorted(_load(results, "loop_ab")["rows"], key=lambda r: (FAMILIES[r["family"]], r["batch"], r["units"]))
    return _table(
        ["shape (B×H)", "CPU-time ratio, autodiff → fused", "wall ratio, autodiff → fused"],
        [[f"{FAMILIES[r['family']]} {r['batch']}×{r['units']}",
          f"{r['cpu_ratio']['autodiff']:.2f} → {r['cpu_ratio']['fused']:.2f}",
          f"{r['wall_ratio']['autodiff']:.2f} → {r['wall_ratio']['fused']:.2f}"] for r in rows],
    )


def esn(results):
    """reservoirpy's README protocol, zoo against reservoirpy per size: interleaved warm rounds, ratio and range."""
    header = ["units", "zoo RMSE", "reservoirpy RMSE", "zoo warm s (range)", "reservoirpy warm s (range)",
              "warm ratio (range)", "zoo cold s (build)", "reservoirpy cold s"]
    rows = []
    for r in _load(results, "esn")["readme"]:
        zoo, rp, ratio = r["zoo"], r["reservoirpy"], r["warm_ratio_reservoirpy_over_zoo"]

        def timing(c):
            return f"{c['warm_s']:.3g} ({c['warm_spread_s']['min']:.3g}–{c['warm_spread_s']['max']:.3g})"

        rows.append([
            f"{r['units']:,}", f"{zoo['rmse']:.5f}", f"{rp['rmse']:.5f}", timing(zoo), timing(rp),
            f"**{ratio['median']:.2f}** ({ratio['min']:.2f}–{ratio['max']:.2f})",
            f"{zoo['cold_s']:.3g} ({zoo['build_s']:.3g})", f"{rp['cold_s']:.3g}",
        ])
    return _table(header, rows)


def esn_memory(results):
    """Peak memory of build + fit + forecast, each contender in a fresh process."""
    memory = _load(results, "esn")["memory"]
    return _table(
        [f"contender ({memory['units']:,} units)", "peak RSS over the start (MiB)", "tracemalloc peak (MiB)"],
        [[name, f"{memory[name]['peak_rss_over_start_mib']:,.0f}", f"{memory[name]['tracemalloc_peak_mib']:,.0f}"]
         for name in ("zoo", "reservoirpy") if name in memory],
    )


def esn_method(results):
    """One step ahead at 100 units over reservoir seeds × fresh series: chosen on validation, and README values."""
    method = _load(results, "esn_method")
    rows = []
    for label, key in (("chosen on validation", "chosen"), ("reservoirpy README values", "readme")):
        tested = method["tested"][key]
        config = tested["config"]
        words = (f"{label}: spectral radius {config['spectral_radius']:g}, leak {config['leak_rate']:g}, input "
                 f"scaling {config['input_scaling']:g}, ridge {_g(config['ridge'])}")
        for name in ("zoo", "reservoirpy"):
            summary = tested[f"{name}_summary"]
            rows.append([words, name, f"**{summary['median']:.5f}**", f"{summary['q25']:.5f} – {summary['q75']:.5f}",
                         f"{summary['min']:.5f} – {summary['max']:.5f}", f"{summary['fraction_meeting_bar']:.0%}",
                         str(summary["n"])])
    return _table(["configuration", "library", "median RMSE", "quartiles", "range", "fits ≤ 0.0020", "fits"], rows)


def _reservoir(config):
    """One configuration in words, as BENCHMARKS.md describes it."""
    inputs = "every unit" if config["input_connectivity"] == 1 else f"{config['input_connectivity']:.0%} of units"
    return (f"spectral radius {config['spectral_radius']:g}, leak {config['leak_rate']:g}, input scaling "
            f"{config['input_scaling']:g}, input (the fed-back prediction) and bias on {inputs}, W "
            f"{config['rc_connectivity']:.0%} connected, ridge {_g(config['ridge'])}, {config['warmup']} "
            "warm-up steps")


def esn_nrmse84(results):
    """Jaeger 2001's NRMSE84: the untuned defaults and the tuned reservoir, test and validation series."""
    measured = _load(results, "esn_nrmse84")["nrmse84"]
    validation = _load(results, "esn_validation")["validation"]
    chosen = next(row for row in validation["rows"] if not row["change"])
    bar = _load(results, "quality")["rows"]["esn_mackey_glass_jaeger"]["bar"].replace("<=", "≤")
    untuned, tuned = measured["untuned_config"], validation["chosen"]

    def spread(name):
        values = measured[name].values()
        return f"{_short(min(values))} – {_short(max(values))}"

    defaults = (f"`EchoState` defaults: spectral radius {untuned['spectral_radius']:g}, leak {untuned['leak_rate']:g}, "
                f"input on {untuned['input_connectivity']:.0%} of units, ridge {_g(untuned['ridge'])}")
    return _table(
        [f"reservoir ({tuned['units']} units)", f"NRMSE84 test, median of seeds 0–{len(measured['untuned']) - 1}",
         "range", "validation, geometric mean", "bar"],
        [[defaults, _short(measured["median_untuned"]), spread("untuned"), "—", bar],
         [f"tuned: {_reservoir(tuned)}", f"**{_short(measured['median_tuned'])}**", spread("esn_mackey_glass_jaeger"),
          _short(chosen["geometric_mean"]), bar]],
    )


def _readout_reads(change):
    """What a configuration's readout reads; files written before `readout_degree` say `squared_readout`."""
    degree = change.get("readout_degree", 2 if change.get("squared_readout") else 1)
    return {1: "states", 2: "states and their squares"}.get(degree, f"states' powers 1–{degree}")


def esn_readout_options(results):
    """NRMSE84 with the linear and the squared-state readout: validation rows, then the chosen one on the test."""
    options = _load(results, "esn_readout_options")["readout_options"]
    defaults = options["base"]
    rows = []
    for units in (400, 1000):
        chosen, test = options[f"chosen_{units}"], options[f"test_{units}"]
        for row in options[f"validation_{units}"]["rows"]:
            change = {**defaults, **row["change"]}
            picked = row["change"] == chosen
            rows.append([str(units), _readout_reads(change),
                         _g(change["ridge"]), _short(row["geometric_mean"]),
                         f"**{_short(options[f'median_test_{units}'])}** (seeds 0–{len(test) - 1})" if picked else "—",
                         f"{_short(min(test.values()))} – {_short(max(test.values()))}" if picked else "—"])
    return _table(["units", "readout reads", "ridge", "validation, geometric mean", "NRMSE84 test, median",
                   "range"], rows)


def _change_in_words(change):
    """A validation row's change to the configuration it starts from, e.g. "degree 4, warm-up 100"."""
    words = {"readout_degree": "degree", "warmup": "warm-up", "bias_scaling": "bias", "leak_rate": "leak",
             "spectral_radius": "spectral radius", "input_scaling": "input scaling", "ridge": "ridge"}
    return ", ".join(f"{words.get(key, key)} {_g(value)}" for key, value in change.items()) or "none"


def _validation_rows(rows, chosen):
    return [[_change_in_words(row["change"]), _short(row["geometric_mean"]),
             _short(min(row["values"])) + " – " + _short(max(row["values"])),
             "**chosen**" if row["change"] == chosen else ""] for row in rows]


def esn_polynomial_readout(results):
    """The readout's degree and what moved with it, on validation series only: the candidates, from the
    squared-state default, then each hyperparameter of the chosen one moved a step either way."""
    degree = _load(results, "esn_validation_degree")["validation"]
    neighbours = _load(results, "esn_validation_neighbours")["validation"]
    chosen = min(degree["rows"], key=lambda row: row["geometric_mean"])["change"]
    rows = [["from the squared readout: " + r[0], *r[1:]] for r in _validation_rows(degree["rows"], chosen)]
    rows += [["from the chosen one: " + r[0], *r[1:]] for r in _validation_rows(neighbours["rows"][1:], None)]
    return _table(["change", "validation NRMSE84, geometric mean", "range", "choice"], rows)


def esn_jaeger_test(results):
    """The chosen configuration on the test series: the issue's median over seeds 0-9 (`quality.json`'s figure, the
    same fits as the per-seed file's first ten), over seeds 0-29, and at Jaeger & Haas's 1,000 units with λ chosen
    again on validation."""
    quality = _load(results, "quality")["rows"]["esn_mackey_glass_jaeger"]["metrics"]["nrmse84_median"]
    seeds = _load(results, "esn_jaeger_test_seeds")["test_seeds"]
    if seeds["median_seeds_0_9"] != quality:
        raise ValueError("esn_jaeger_test_seeds.json and quality.json disagree on seeds 0-9: rerun both. Received: "
                         f"medians {seeds['median_seeds_0_9']} and {quality}")
    every_seed = list(seeds["nrmse84"].values())  # seeds 0, 1, 2, ... in order
    big = _load(results, "esn_big_reservoir")["big_reservoir"]
    big_values, bar = big["test"].values(), seeds["bar"]
    rows = [[f"400, 0–{len(values) - 1} (`{source}`)", f"**{_short(statistics.median(values))}**",
             f"{_short(min(values))} – {_short(max(values))}",
             f"{sum(v <= bar for v in values)} of {len(values)}", f"≤ {_short(bar)}"]
            for values, source in ((every_seed[:10], "quality.json"), (every_seed, "esn_jaeger_test_seeds.json"))]
    rows.append([f"{big['config']['units']:,}, 0–{len(big_values) - 1} (`esn_big_reservoir.json`; ridge "
                 f"{_g(big['chosen']['ridge'])} chosen on validation)", f"**{_short(big['median_test'])}**",
                 f"{_short(min(big_values))} – {_short(max(big_values))}",
                 f"{sum(v <= big['jaeger_haas_2004'] for v in big_values)} of {len(big_values)} under Jaeger & Haas's",
                 f"10^-4.2 ≈ {_short(big['jaeger_haas_2004'])} (Jaeger & Haas 2004)"])
    return _table(["units, reservoir seeds", "NRMSE84 test, median", "range", "seeds at or under the bar", "bar"],
                  rows)


def serving_latency(results):
    """Per-request latency of the embedded server against the same signature in-process."""
    latency = _load(results, "serving")["latency"]
    reference = latency["in_process"]
    rows = [["in-process (reference)", f"{reference['median_ms']:.3f} ms", f"{reference['p99_ms']:.2f} ms",
             "—", "—", "—"]]
    for key, label in (("grpc", "gRPC (official stub)"), ("rest", "REST (`requests`, keep-alive)")):
        r = latency[key]
        verdict = "met" if r["meets_bar"] else "missed"
        rows.append([label, f"{r['median_ms']:.3f} ms", f"{r['p99_ms']:.2f} ms",
                     f"**{r['overhead_median_ms']:.2f} ms**", f"{r['overhead_p99_ms']:.2f} ms",
                     f"≤ {r['bar_overhead_median_ms']:g} ms: {verdict}"])
    return _table(["contender", "median", "p99", "overhead, median", "overhead, p99", "bar (median overhead)"], rows)


def serving_load(results):
    """Requests per second under 1, 4 and 16 concurrent clients, and every error counted."""
    load = _load(results, "serving")["load"]
    protocols = ("in_process", "grpc", "rest")
    rows = [[clients] + [f"{load[p][clients]['requests_per_s']:,.0f}" for p in protocols]
            + [str(sum(load[p][clients]["errors"] for p in protocols))]
            for clients in load["in_process"]]
    return _table(["clients", "in-process req/s", "gRPC req/s", "REST req/s", "errors"], rows)


def streaming(results):
    """Streaming through the server against the same `generate` calls in-process."""
    rows = [[r["protocol"], str(r["chunk_size"]), f"{r['first_piece_ms']:.1f}", f"{r['in_process_first_piece_ms']:.1f}",
             f"{r['chars_per_s']:.0f}", f"{r['in_process_chars_per_s']:.0f}", f"{r['throughput_ratio']:.0%}",
             "yes" if r["same_text_as_in_process"] else "no"] for r in _load(results, "streaming")["rows"]]
    return _table(["protocol", "chunk", "first piece (ms)", "in-process (ms)", "chars/s", "in-process chars/s", "ratio",
                   "same text"], rows)


def chunks(results):
    """time(1 chunk) / time(4 chunks) per shape, median (min–max) over interleaved rounds."""
    def ratio(r):
        return f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})"

    rows = [[f"{FAMILIES[r['family']]} {r['batch']}×{r['units']}", ratio(r["train"]["cpu_ratio"]),
             ratio(r["train"]["wall_ratio"]), ratio(r["infer"]["cpu_ratio"]), ratio(r["infer"]["wall_ratio"])]
            for r in _load(results, "chunks")["rows"]]
    return _table(["shape (B×H)", "training, CPU time", "training, wall", "inference, CPU time", "inference, wall"],
                  rows)


def column_blocks(results):
    """Sampling with the kernels' columns in blocks against whole kernels, per thread count, model and batch."""
    def ratio(r):
        return f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})"

    def rate(r, key):
        return f"{r['chars_per_s'][key]['median']:,.0f}"

    def chunk_calls(r):
        calls = r["stream_chunks"]
        ms = calls["ms_per_call"]
        return f"{ms['blocks']['median']:.1f} / {ms['stored']['median']:.1f}, {ratio(calls['stored_over_cut_wall'])}"

    load = _load(results, "column_blocks")
    rows = [[str(part["threads"]), r["model"], str(r["batch"]), rate(r, "blocks"), rate(r, "whole"),
             f"**{ratio(r['blocks_over_whole_wall'])}**", ratio(r["blocks_over_whole_cpu"]),
             f"{rate(r, 'blocks_products')} / {rate(r, 'whole_products')}",
             f"{r['products_share_of_step_wall']['blocks']['median']:.0%}", chunk_calls(r),
             "yes" if r["same_text_and_state"] and r["stream_chunks"]["same_text_and_state"] else "no"]
            for part in load["threads"] for r in part["rows"]]
    chunk = load["threads"][0]["rows"][0]["stream_chunks"]["characters"]
    return _table(["threads", "model", "batch", "blocks chars/s", "whole kernels chars/s", "blocks / whole, wall",
                   "blocks / whole, CPU time", "products alone chars/s, blocks / whole",
                   "products' share of a step (blocks)",
                   f"{chunk}-character calls: ms cut per call / stored, ratio", "same text and state"], rows)


def serving_under_load(results):
    """64 concurrent streams (half REST, half gRPC), batching on and off, against in-process batch-64 `generate`."""
    load = _load(results, "serving_load")
    cores = load["machine"]["cpu_count"]
    rows = []
    labels = (("batching_on", "on"), ("batching_off", "off"), ("batching_on_rest_only", "on, all REST"),
              ("batching_on_grpc_only", "on, all gRPC"), ("batching_on_heap_unfrozen", "on, heap not frozen"),
              ("batching_on_tensorflow_default_threads", "on, TensorFlow's own thread choice"),
              ("batching_on_chunks_of_8", "on, lane chunks of 8 characters"),
              ("batching_on_rest_state_as_numbers", "on, all REST, the state as JSON numbers (`generate`)"),
              ("batching_on_rest_client_requests", "on, all REST, the client's calls through `requests`"))
    for name, label in labels:
        if name not in load["runs"]:
            continue
        r = load["runs"][name]
        missed = [bar for bar, met in r["bars"].items() if not met]
        spread = r["ratio_median_round"]
        rows.append([
            label, f"{r['chars_per_s']:,.0f}", f"{r['in_process_chars_per_s']:,.0f}",
            f"**{r['ratio_to_in_process']:.0%}** ({spread['min']:.0%}–{spread['max']:.0%})",
            f"{r['server_cpu_s']:.1f} / {r['clients_cpu_s']:.1f}",
            f"{cpu_bound_ratio(r, cores):.0%}",
            lane_steps(r),
            f"{r['first_piece_s']['p50']:.2f} / {r['first_piece_s']['p99']:.2f}",
            f"{r['between_pieces_s']['p50']:.2f} / {r['between_pieces_s']['p99']:.2f}",
            f"{r['server_rss_before_bytes'] / 2**20:,.0f} → {r['server_rss_after_bytes'] / 2**20:,.0f} MiB "
            f"({r['server_rss_growth']:+.1%})",
            str(r["errors_all_rounds"]),
            "all met" if not missed else "missed: " + ", ".join(m.replace("_", " ") for m in missed),
        ])
    return _table(["batching", "chars/s", "in-process batch-64 chars/s", "ratio (rounds)", "CPU-s server / clients",
                   "ratio if every core were busy", "lane steps per stream's character (rows per step)",
                   "first piece p50 / p99 (s)",
                   "between pieces p50 / p99 (s)", "server RSS", "errors (all rounds)", "bars"], rows)



def lane_steps(run):
    """The generation engine's steps over one stream's characters, with the rows a step carried on average: the
    in-process reference runs 1.00 (every row in every step)."""
    generation = run.get("generation")
    if not generation or not generation["steps"]:
        return "–"
    return f"{generation['steps'] / run['tokens_per_client']:.2f} ({generation['rows_per_step']:.1f})"


def cpu_bound_ratio(run, cores):
    """The ratio a load run would reach if its server and clients kept every core busy the whole time: its
    characters over the CPU-seconds they cost, spread over `cores`, against the in-process rate. What separates
    this from the bar is CPU per character; what separates the measured ratio from this is idle or waiting cores."""
    fastest_wall_s = (run["server_cpu_s"] + run["clients_cpu_s"]) / cores
    return run["characters"] / fastest_wall_s / run["in_process_chars_per_s"]


def serving_pieces(results):
    """CPU per piece of one streaming `generate` call, against the signature call itself."""
    pieces = _load(results, "serving_pieces")["cpu_us_per_call"]
    labels = {
        "signature": "the SavedModel's `generate` (reference)",
        "data_plane": "data plane: checks, limits, generation lane, the same call",
        "rest_client_write": "REST client: write the request",
        "rest_server_read": "REST server: read the request",
        "rest_server_write": "REST server: write the answer",
        "rest_client_read": "REST client: read the answer",
        "data_plane_bytes": "data plane, `generate_bytes`: the state unpacked into the same lane and packed again",
        "rest_bytes_client_write": "REST client, `generate_bytes`: write the request",
        "rest_bytes_server_read": "REST server, `generate_bytes`: read the request",
        "rest_bytes_server_write": "REST server, `generate_bytes`: write the answer",
        "rest_bytes_client_read": "REST client, `generate_bytes`: read the answer",
        "grpc_client_write": "gRPC client: write the request",
        "grpc_server_read": "gRPC server: read the request's tensors",
        "grpc_server_read_tf": "the same with TensorFlow's `tf.make_ndarray` (before)",
        "grpc_server_write": "gRPC server: write the answer's tensors",
        "grpc_servicer": "gRPC servicer around the data plane",
        "grpc_client_read": "gRPC client: read the answer",
    }
    rows = [[label, f"{pieces[name]['median_us']:,.0f}", f"{pieces[name]['min_us']:,.0f}–{pieces[name]['max_us']:,.0f}"]
            for name, label in labels.items() if name in pieces]
    return _table(["piece", "CPU µs per call, median", "range over rounds"], rows)


def xla_step(results, name="xla_step"):
    """The recipes' training step with and without XLA, one thread (`name`: the results file)."""
    rows = [[f"{FAMILIES[r['family']]} {r['batch']} × {r['units']}", f"{r['step_ms']['plain']:.1f}",
             f"{r['step_ms']['xla']:.1f}", f"**{_median_range(r['speedup'])}**",
             f"{r['first_step_s']['plain']:.1f} / {r['first_step_s']['xla']:.1f}",
             f"{r['weights_max_abs_difference_after_one_step']:.1e}"]
            for r in _load(results, name)["rows"]]
    return _table(["shape (B × H)", "step ms, without XLA", "step ms, XLA", "XLA speed-up (range)",
                   "first step s, without / with XLA", "weights apart after one step"], rows)


def xla_flags(results):
    """XLA's CPU options on the training shapes where the zoo missed a bar: each setting's ratios, by shape."""
    flags = _load(results, "xla_flags")
    rows = []
    for shape in flags["shapes"]:
        key = f"{shape['threads']} {shape['family']} {shape['batch']}x{shape['units']}"
        for setting, figures in flags["summary"].items():
            row = figures[key]
            rows.append([str(shape["threads"]), f"{FAMILIES[shape['family']]} {shape['batch']} × {shape['units']}",
                         setting, f"`{flags['settings'][setting]}`" if flags["settings"][setting] else "",
                         _median_range(row["zoo/pytorch"]), _median_range(row["zoo/keras"]),
                         _median_range(row["zoo_over_default"])])
    return _table(["threads", "shape (B × H)", "setting", "XLA_FLAGS", "zoo / PyTorch (range)",
                   "zoo / Keras (range)", "zoo's rate / the default's (range)"], rows)


def _median_range(figure, digits=".2f"):
    return f"{figure['median']:{digits}} ({figure['min']:{digits}}–{figure['max']:{digits}})"


# The `generate` paths of `benchmarks.peers`: the exported signature, and the form the embedded server runs instead
# on one thread.
GENERATE_PATHS = {"zoo": "signature (TF Serving)", "server": "whole-kernel form (embedded server, one thread)"}


def peers_generation(results):
    """char_lstm's `generate` paths against a PyTorch loop over the same weights, by threads and batch; the bar
    judges the path the embedded server runs on those threads."""
    peers = _load(results, "peers_tensorflow_cpu")
    bars = peers["bars"]["generation_zoo_over_pytorch_by_batch"]
    rows = []
    for threads, part in peers["threads"].items():
        for row in (part["generation"] or {}).get("rows", []):
            per_s, ratios = row["chars_per_s"], row["ratios"]
            for path, label in GENERATE_PATHS.items():
                if f"{path}_one_call" not in per_s:
                    continue
                judged = f"{path}_one_call/pytorch" in row["bars"]
                one_call = _median_range(ratios[f"{path}_one_call/pytorch"]["wall"])
                rows.append([threads, str(row["batch"]), label, f"{per_s[f'{path}_one_call']['median']:,.0f}",
                             f"{per_s[f'{path}_chunks']['median']:,.0f}", f"{per_s['pytorch']['median']:,.0f}",
                             f"**{one_call}**" if judged else one_call,
                             _median_range(ratios[f"{path}_chunks/pytorch"]["wall"]),
                             f"≥ {bars[str(row['batch'])]}" if judged else "not judged"])
    return _table(["threads", "batch", "zoo path", "zoo one call chars/s", "zoo in a stream's chunks chars/s",
                   "PyTorch chars/s", "one call / PyTorch (range)", "chunks / PyTorch (range)", "bar"], rows)


def peers_training(results):
    """One training step (forward, backward, Adam) of the zoo's Trainer against PyTorch and the Keras built-in."""
    peers = _load(results, "peers_tensorflow_cpu")
    rows = []
    for threads, part in peers["threads"].items():
        for row in part["training"]:
            per_s, ratios = row["tokens_per_s"], row["ratios"]
            verdicts = row["bars"].values()
            rows.append([threads, FAMILIES[row["family"]], f"{row['batch']} × {row['units']}",
                         f"{per_s['zoo']['median']:,.0f}", f"{per_s['pytorch']['median']:,.0f}",
                         f"{per_s['keras']['median']:,.0f}",
                         f"**{_median_range(ratios['zoo/pytorch']['wall'])}**",
                         f"**{_median_range(ratios['zoo/keras']['wall'])}**",
                         "both met" if all(v["met"] for v in verdicts) else
                         "missed: " + ", ".join(n for n, v in row["bars"].items() if not v["met"])])
    return _table(["threads", "family", "B × H", "zoo tokens/s", "PyTorch tokens/s", "Keras tokens/s",
                   "zoo / PyTorch (range)", "zoo / Keras (range)", "bars (≥ 1.0, ≥ 1.2)"], rows)


def peers_flops(results):
    """The training rows in GFLOP/s of matrix products against the GEMM peak measured at the same thread count."""
    peers = _load(results, "peers_tensorflow_cpu")
    rows = []
    for threads, part in peers["threads"].items():
        peak = part.get("gemm_peak")
        if not peak:
            continue
        best = max(rate["median"] for rate in peak["gflops_per_s"].values())
        for row in part["training"]:
            rates, shares = row["matmul_gflops_per_s"], row["share_of_gemm_peak"]
            rows.append([threads, FAMILIES[row["family"]], f"{row['batch']} × {row['units']}", f"{best:.0f}",
                         *(f"{rates[name]:.0f} ({shares[name]:.0%})" for name in ("zoo", "keras", "pytorch")),
                         f"{row['zoo_share_needed_for_keras_bar']:.0%}"])
    return _table(["threads", "family", "B × H", "GEMM peak GFLOP/s", "zoo GFLOP/s (share of peak)",
                   "Keras GFLOP/s (share)", "PyTorch GFLOP/s (share)", "zoo / Keras ≥ 1.2 needs"], rows)


def char_cost(results, name="char_cost"):
    """CPU seconds per update of each character recipe here, against the update time its card records (`name`: the
    results file)."""
    r = _load(results, name)
    rows = []
    for row in r["rows"]:
        card = row["card"]
        rows.append([row["model"], f"{row['update_matmul_flops'] / 1e9:.1f}", f"{row['cpu_s_per_update']:.3f}",
                     f"{row['matmul_gflops_per_cpu_s']:.0f}", f"{card['cpu_s_per_update']:.3f}",
                     f"{card['matmul_gflops_per_cpu_s']:.0f}", f"{row['recipe_steps']:,}",
                     f"{row['recipe_cpu_minutes_here']:.0f}", f"{row['updates_in_budget_here']:,}"])
    return _table(["model", "GFLOP per update (products)", "CPU-s per update here", "GFLOP per CPU-s here",
                   "CPU-s per update on the card", "GFLOP per CPU-s on the card", "recipe's updates",
                   "CPU-minutes they take here", f"updates in {r['budget_cpu_minutes']} CPU-minutes here"], rows)


def _issue_bar_cell(row):
    if row["at_most_issue_bar"] is None:  # no bar for this model: only the budget
        return "yes" if row["within_budget"] else "no"
    return "met" if row["at_most_issue_bar"] else "missed"


def char_recipes(results, name="char_recipes"):
    """The candidate recipes tried for a character model, each within the budget, beside the shipped model."""
    r = _load(results, name)
    rows = []
    for row in r["candidates"]:
        options, metrics = row["options"], row["metrics"]
        curve = row["validation_curve"]
        quarters = [curve[round(len(curve) * share) - 1] for share in (0.25, 0.5, 0.75, 1.0)]
        changes = ", ".join(f"{key.replace('_', ' ')} {value:g}" for key, value in row["changes"].items()
                            if key != "steps") or "the recipe's"
        figure = f"**{row['value']:.3f}**"
        if "last_weights_val_nats_per_char" in metrics:  # trained with weight averaging: the last update's too
            figure += f" (last update's weights: {metrics['last_weights_val_nats_per_char']:.3f})"
        rows.append([changes, f"{metrics['steps']:,}",
                     "bfloat16" if options.get("mixed_precision") else "float32",
                     f"{metrics['train_cpu_minutes']:.1f}", figure,
                     _issue_bar_cell(row),
                     ", ".join(f"{step:,}: {nats:.3f}" for step, nats in quarters)])
    shipped = r["shipped"]
    rows.append([f"shipped (version {shipped['served_version']})", "", "", "", f"{shipped['value']:.3f}", "", ""])
    return _table(["candidate", "updates", "products", "CPU-minutes", "nats/char, every held-out character",
                   f"≤ {r['issue_bar']} within 45 CPU-minutes" if r["issue_bar"] else "within 45 CPU-minutes",
                   "validation curve at a quarter of the updates, half, …: nats/char on the first held-out characters"],
                  rows)


def peers_memory(results):
    """Peak RSS of training steps at B = 128, H = 1024, T = 100: the zoo's step against PyTorch's."""
    rows = []
    for pair in _load(results, "peers_tensorflow_cpu")["memory"]:
        zoo, torch = pair["zoo"], pair["pytorch"]
        rows.append([FAMILIES[pair["family"]], f"{zoo['peak_rss_mib']:,.0f}", f"{zoo['peak_over_before_mib']:,.0f}",
                     f"{torch['peak_rss_mib']:,.0f}", f"{torch['peak_over_before_mib']:,.0f}",
                     f"{pair['peak_ratio_zoo_over_pytorch']:.2f}"])
    return _table(["family", "zoo peak RSS (MiB)", "zoo rise in the steps (MiB)", "PyTorch peak RSS (MiB)",
                   "PyTorch rise in the steps (MiB)", "zoo / PyTorch peak"], rows)


def rtrl_cost(results):
    """BENCHMARKS.md's RTRL table: CPU time per online step against BPTT's per step, memory counted, by H."""
    r = _load(results, "rtrl")
    rows = []
    for row in r["cost"]:
        ms, ratio, memory = row["cpu_ms_per_step"], row["ratio_to_bptt"], row["memory_numbers"]
        rows.append([FAMILIES.get(row["cell"], "LSTM"), str(row["units"]), f"{row['parameters']:,}",
                     f"{ms['rtrl']:.3g}", f"{ms['uoro']:.3g}", f"{ms['bptt']:.3g}",
                     f"{ratio['rtrl']:.3g}", f"{ratio['uoro']:.3g}",
                     f"{memory['rtrl']:,}", f"{memory['uoro']:,}", f"{memory['bptt']:,}"])
    for cell, fitted in r["exponents"].items():
        time, memory = fitted["time"], fitted["memory"]
        rows.append([f"{FAMILIES.get(cell, 'LSTM')} exponent (H ≥ 16)", "", "",
                     *(f"H^{time[key]:.2f}" for key in ("rtrl", "uoro", "bptt")), "", "",
                     *(f"H^{memory[key]:.2f}" for key in ("rtrl", "uoro", "bptt"))])
    return _table(["cell", "H", "weights P", "RTRL ms/step", "UORO ms/step", "BPTT ms/step", "RTRL / BPTT",
                   "UORO / BPTT", "RTRL memory (S·P)", "UORO memory (S + P)",
                   f"BPTT memory (T·S, T = {r['settings']['bptt_steps']})"], rows)


def rtrl_uoro(results):
    """BENCHMARKS.md's UORO table: its gradient against exact RTRL's, median over the random problems."""
    r = _load(results, "rtrl")
    rows = []
    for cell, fitted in r["uoro_vs_rtrl"].items():
        rows.append([FAMILIES.get(cell, "LSTM"), str(len(fitted["problems"])), str(r["settings"]["draws"]),
                     f"{fitted['median_relative_bias']:.3g}", f"{fitted['median_relative_bias_if_unbiased']:.3g}",
                     f"{fitted['median_relative_variance']:.3g}", f"{fitted['median_mean_cosine']:.3g}"])
    return _table(["cell", "problems", "draws each", "relative bias ‖mean ĝ − g‖/‖g‖",
                   "same from sampling alone (unbiased)", "relative variance E‖ĝ − mean ĝ‖²/‖g‖²",
                   "mean cos(ĝ, g)"], rows)

TABLES = {
    "quality": quality,
    "layers": layers,
    "loop_ab": loop_ab,
    "esn": esn,
    "esn_memory": esn_memory,
    "esn_method": esn_method,
    "esn_nrmse84": esn_nrmse84,
    "serving_latency": serving_latency,
    "serving_load": serving_load,
    "streaming": streaming,
    "chunks": chunks,
    "column_blocks": column_blocks,
    "serving_under_load": serving_under_load,
    "serving_pieces": serving_pieces,
    "xla_step": xla_step,
    "xla_step_mixed": lambda results: xla_step(results, "xla_step_mixed"),
    "xla_flags": xla_flags,
    "peers_training": peers_training,
    "peers_generation": peers_generation,
    "peers_memory": peers_memory,
    "peers_flops": peers_flops,
    "esn_readout_options": esn_readout_options,
    "esn_polynomial_readout": esn_polynomial_readout,
    "esn_jaeger_test": esn_jaeger_test,
    "char_cost": char_cost,
    "char_cost_mixed": lambda results: char_cost(results, "char_cost_mixed"),
    # One table per results file of `python -m benchmarks.char_recipes`, each a round of candidates.
    **{name: functools.partial(char_recipes, name=name) for name in (
        "char_recipes", "char_recipes_wider", "char_recipes_dropout", "char_recipes_depth_batch",
        "char_recipes_wide_dropout", "char_recipes_averaged", "char_recipes_gru_wide", "char_recipes_elman_wide")},
    "rtrl_cost": rtrl_cost,
    "rtrl_uoro": rtrl_uoro,
}


def render(name, results=RESULTS):
    """The markdown of table `name` from the results files in the folder `results`."""
    if name not in TABLES:
        raise ValueError(f"`name` must be one of {sorted(TABLES)}. Received: name={name!r}")
    return TABLES[name](results)


def update(text, results=RESULTS):
    """`text` with every marked table rendered anew from the results files in the folder `results`."""
    pieces, position = [], 0
    for begin in BEGIN.finditer(text):
        end = text.find(END, begin.end())
        following = BEGIN.search(text, begin.end())
        if end < 0 or (following and following.start() < end):
            raise ValueError(f"`<!-- table: {begin['name']} -->` has no `{END}` after it.")
        pieces += [text[position:begin.end()], "\n\n", render(begin["name"], results), "\n\n"]
        position = end
    return "".join(pieces) + text[position:]


def stale(root=ROOT, results=RESULTS):
    """The files of `DOCS` under `root` whose tables differ from the results files."""
    return [doc for doc in DOCS if update((root / doc).read_text(), results) != (root / doc).read_text()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the tables in place")
    action.add_argument("--check", action="store_true", help="exit 1 when a file's tables are out of date")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        for name in TABLES:
            print(f"<!-- table: {name} -->\n\n{render(name)}\n")
        return 0
    if args.check:
        outdated = stale()
        for doc in outdated:
            print(f"{doc}: tables differ from benchmarks/results/; run python -m benchmarks.tables --write",
                  file=sys.stderr)
        return 1 if outdated else 0
    for doc in DOCS:
        path = ROOT / doc
        text = update(path.read_text())
        if text != path.read_text():
            path.write_text(text)
            print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
