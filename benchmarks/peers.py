"""The zoo against its peers on one machine: PyTorch and Keras's built-in layers, training, memory and sampling.

    nice -n 10 python -m benchmarks.peers              # the full grid at 1 and 2 threads (hours at H = 1024)
    python -m benchmarks.peers --family lstm --batch 32 --units 128 --rounds 3 --out /tmp/peers_smoke.json

Training: one forward + backward + Adam update (global-norm clip at the
recipe's `clipnorm`, MSE of the last output against random targets) on a fixed
random float32 batch, T = 100, I = H. The zoo layer and the Keras built-in
(`use_cudnn=False`) both go through `training.loop.Trainer.train_step`, the
step every recipe trains with, built from `PeerConfig` (compiled with XLA where
it runs: the recipes' default `jit_compile="auto"`; `xla` in each shape's
record says what it ran as); PyTorch trains
`torch.nn.LSTM`/`GRU`/`RNN` (tanh) on the same batch. Reported per shape:
tokens/s (B·T over the time per step) of each contender, median and min–max
over interleaved rounds (`benchmarks.timing`), in wall and in process CPU time,
and the per-round ratios zoo/PyTorch and zoo/Keras (> 1: the zoo is faster).

Generation: char_lstm's exported `generate` signature (one call of all the
characters, and the growing chunks of `serving.streaming.chunk_sizes` a
streaming client asks for) against a plain PyTorch loop over the same weights,
copied from the shipped model (`TorchCharLM`). On one thread the embedded
server runs the signature's whole-kernel form instead (`serving.servable`), so
that worker times the form too, and the bars judge the path the server runs.
The copy is proved before anything is timed: the first 50 greedy characters of
every path and of PyTorch must be identical.

Memory: peak RSS of a training step at B = 128, H = 1024 for the zoo step and
PyTorch, each in a fresh process.

Peak: what one float32 matrix product (`--peak-size`, square) runs at in
TensorFlow and in PyTorch at each thread count, GFLOP/s, interleaved rounds.
Every training row is then put in those units (`flop_rates`): the step's
matrix products do 10·G·H² FLOPs per token (G gates), so a contender's
tokens/s says which share of the machine's best matrix-product rate it runs
at, and how much of it a ratio bar would need.

TensorFlow makes its thread pools at its first op, so each thread count runs in
its own worker process (`--worker`), where every contender gets the same count.
Results: `benchmarks/results/peers_<backend>_<device>.json`, with the bars of
issue 12 flagged met or missed.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.timing import interleaved
from training.config import TrainConfig, knob

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAMILIES = ("lstm", "gru", "elman")
# Issue 12's bars: the median per-round ratio (wall time) must reach them on every shape.
TRAINING_BARS = {"zoo/pytorch": 1.0, "zoo/keras": 1.2}
GATES = {"lstm": 4, "gru": 3, "elman": 1}
PARTS = ("training", "generation", "memory", "peak")
GENERATION_BARS = {1: 1.5, 32: 1.0}  # zoo/pytorch, by batch
GREEDY_CHARS = 50


@dataclasses.dataclass
class PeerConfig(TrainConfig):
    """A one-layer net on one fixed random batch, trained by the recipes' own `Trainer` (benchmark only)."""

    model: str = "peers"  # names nothing in the registry: `build_model` builds the net itself
    family: str = knob("lstm", choices=FAMILIES)
    layer: str = knob("zoo", choices=("zoo", "keras"))  # the zoo layer or Keras's built-in
    units: int = 128  # H, and the input width I
    time_steps: int = 100  # T

    def build_model(self):
        import keras

        return keras.Sequential([keras.Input((self.time_steps, self.units)), self._layer()])

    def _layer(self):
        import keras

        from zoo.layers import GRU, Elman, PeepholeLSTM

        units = self.units
        if self.layer == "zoo":
            return {"lstm": lambda: PeepholeLSTM(units, use_peepholes=False),
                    "gru": lambda: GRU(units, reset_after=True), "elman": lambda: Elman(units)}[self.family]()
        return {"lstm": lambda: keras.layers.LSTM(units, use_cudnn=False),
                "gru": lambda: keras.layers.GRU(units, reset_after=True, use_cudnn=False),
                "elman": lambda: keras.layers.SimpleRNN(units)}[self.family]()

    def training_data(self):
        return FixedBatch(self)


class FixedBatch:
    """The same random `(inputs (B, T, H), targets (B, H))` at every step; nothing carried between steps."""

    carries_state = False

    def __init__(self, config):
        rng = np.random.default_rng(config.seed)
        self.inputs = rng.normal(size=(config.batch_size, config.time_steps, config.units)).astype("float32")
        self.targets = rng.normal(size=(config.batch_size, config.units)).astype("float32")

    def batch(self, step):
        return self.inputs, self.targets, True


def trainer_step(config):
    """`Trainer(config).train_step` on the config's fixed batch, as a no-argument callable."""
    from training.loop import Trainer

    trainer = Trainer(config)
    inputs, targets, _ = trainer.data.batch(0)

    def step():
        return trainer.train_step(inputs, targets)

    step.trainer = trainer  # whether it ran under XLA is known once it ran
    return step


def torch_step(config):
    """The PyTorch twin of `trainer_step`: same net shape, batch, loss, Adam rate and gradient clip."""
    import torch

    torch.manual_seed(config.seed)
    net_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}[config.family]
    net = net_class(config.units, config.units, batch_first=True)
    parameters = list(net.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    data = FixedBatch(config)
    inputs, targets = torch.from_numpy(data.inputs), torch.from_numpy(data.targets)

    def step():
        optimizer.zero_grad(set_to_none=True)
        outputs, _ = net(inputs)  # (B, T, H)
        loss = torch.nn.functional.mse_loss(outputs[:, -1], targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.clipnorm)
        optimizer.step()
        return loss.item()

    return step


def spread(values):
    values = np.asarray(values, dtype=float)
    return {"median": float(np.median(values)), "min": float(values.min()), "max": float(values.max())}


def judge(value, bar):
    return {"bar": bar, "value": value, "met": bool(value >= bar), "missed_by": max(0.0, bar - value)}


def summarize(wall, cpu, work, ratios, bars):
    """Rates (`work` per second) of each contender and the per-round ratios `a/b` (a's rate over b's).

    Args:
        wall, cpu: contender -> seconds per call, one per round (`benchmarks.timing.interleaved`).
        work: tokens (or characters) one call handles.
        ratios: names "a/b" of contender pairs.
        bars: ratio name -> the least median wall ratio that meets the bar.
    """
    row = {"per_s": {k: spread(work / np.array(v)) for k, v in wall.items()},
           "cpu_per_s": {k: spread(work / np.array(v)) for k, v in cpu.items()},
           "ratios": {}, "bars": {}}
    for name in ratios:
        a, b = name.split("/")
        # b's time over a's time in the same round = a's rate over b's
        row["ratios"][name] = {clock: spread(np.array(times[b]) / np.array(times[a]))
                               for clock, times in (("wall", wall), ("cpu", cpu))}
        if name in bars:
            row["bars"][name] = judge(row["ratios"][name]["wall"]["median"], bars[name])
    return row


def warm_block(contenders, min_block_seconds):
    """Runs each contender twice (the first call traces) and returns steps per timing for the slowest to last
    `min_block_seconds`."""
    slowest = 0.0
    for step in contenders.values():
        step()
        start = time.perf_counter()
        step()
        slowest = max(slowest, time.perf_counter() - start)
    return max(1, round(min_block_seconds / slowest))


def measure_training(family, batch, units, time_steps, rounds, threads, out_dir, min_block_seconds):
    configs = {layer: PeerConfig(family=family, layer=layer, units=units, time_steps=time_steps, batch_size=batch,
                                 threads=threads, out_dir=str(out_dir / f"{family}_{batch}_{units}_{layer}"))
               for layer in ("zoo", "keras")}
    contenders = {"zoo": trainer_step(configs["zoo"]), "pytorch": torch_step(configs["zoo"]),
                  "keras": trainer_step(configs["keras"])}
    block = warm_block(contenders, min_block_seconds)
    wall, cpu = interleaved(contenders, rounds, block)
    summary = summarize(wall, cpu, batch * time_steps, TRAINING_BARS, TRAINING_BARS)
    return {"family": family, "batch": batch, "units": units, "time_steps": time_steps, "rounds": rounds,
            "steps_per_timing": block, "tokens_per_s": summary["per_s"], "cpu_tokens_per_s": summary["cpu_per_s"],
            "ratios": summary["ratios"], "bars": summary["bars"],
            "xla": {name: contenders[name].trainer.jit_compile for name in ("zoo", "keras")}}


def matmul_flops_per_token(family, units):
    """FLOPs per token of a training step's matrix products, I = H, G gates: forward x·W and h·U, backward
    dW (x is data: no dx), dU and dh, each 2·G·H² (a multiply-add counts 2). Elementwise work is left out,
    so a rate in these units is a lower bound on what the step computes."""
    return 10 * GATES[family] * units**2


def measure_gemm_peak(size, rounds, min_block_seconds):
    """GFLOP/s of one float32 (size × size)·(size × size) product in TensorFlow and in PyTorch, interleaved."""
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    tf_a, tf_b = tf.constant(a), tf.constant(b)
    tf_product = tf.function(tf.matmul)
    torch_a, torch_b = torch.from_numpy(a), torch.from_numpy(b)
    contenders = {"tensorflow": lambda: tf_product(tf_a, tf_b).numpy(),
                  "pytorch": lambda: torch.mm(torch_a, torch_b)}
    wall, _ = interleaved(contenders, rounds, warm_block(contenders, min_block_seconds))
    return {"size": size, "rounds": rounds,
            "gflops_per_s": {name: spread(2 * size**3 / np.array(times) / 1e9) for name, times in wall.items()}}


def flop_rates(by_threads):
    """Adds to every training row with a GEMM peak at its thread count: each contender's median tokens/s as
    GFLOP/s of matrix products, its share of the best peak (either library's median), and the share the zoo
    would need to meet zoo/keras's bar."""
    for part in by_threads.values():
        peak = part.get("gemm_peak")
        if not peak:
            continue
        best = max(rate["median"] for rate in peak["gflops_per_s"].values())
        for row in part["training"]:
            flops = matmul_flops_per_token(row["family"], row["units"])
            rates = {name: rate["median"] * flops / 1e9 for name, rate in row["tokens_per_s"].items()}
            row["matmul_flops_per_token"] = flops
            row["matmul_gflops_per_s"] = rates
            row["share_of_gemm_peak"] = {name: rate / best for name, rate in rates.items()}
            row["zoo_share_needed_for_keras_bar"] = TRAINING_BARS["zoo/keras"] * rates["keras"] / best
    return by_threads


# -- generation --------------------------------------------------------------------------------------------------
class TorchCharLM:
    """A `CharLM` of peephole LSTM layers in plain PyTorch, its weights copied from the Keras model.

    The step is `PeepholeLSTMCell.step_forward`'s equations, gates in (i, f, c, o) order.
    """

    def __init__(self, model):
        for layer in model.recurrent:
            cell = layer.cell
            if type(cell).__name__ != "PeepholeLSTMCell" or cell.activation.__name__ != "tanh" \
                    or cell.recurrent_activation.__name__ != "sigmoid":
                raise ValueError(f"`model` must stack peephole LSTM layers with tanh and sigmoid. "
                                 f"Received: a {type(cell).__name__} in layer {layer.name!r}")
        import torch

        self.torch = torch
        self.vocabulary = model.vocabulary

        def tensor(variable):
            return torch.from_numpy(np.array(variable.numpy(), dtype=np.float32))

        self.embedding = tensor(model.embedding.embeddings)  # (V, E)
        self.layers = []
        for layer in model.recurrent:
            cell = layer.cell
            peephole = tensor(cell.peephole) if cell.use_peepholes else None  # (3, H): p_i, p_f, p_o
            self.layers.append((tensor(cell.kernel), tensor(cell.recurrent_kernel), tensor(cell.bias), peephole))
        self.head = (tensor(model.head.kernel), tensor(model.head.bias))  # (H, V), (V,)

    def step(self, ids, states):
        """`(logits (B, V), new states)` after feeding `ids` (B,) to `states`, one `(h, c)` per layer."""
        torch = self.torch
        x, new_states = self.embedding[ids], []
        for (kernel, recurrent_kernel, bias, peephole), (h, c) in zip(self.layers, states):
            z_i, z_f, z_c, z_o = (x @ kernel + h @ recurrent_kernel + bias).chunk(4, dim=-1)
            if peephole is not None:
                z_i, z_f = z_i + peephole[0] * c, z_f + peephole[1] * c
            c = torch.sigmoid(z_f) * c + torch.sigmoid(z_i) * torch.tanh(z_c)
            if peephole is not None:
                z_o = z_o + peephole[2] * c
            h = torch.sigmoid(z_o) * torch.tanh(c)
            new_states.append((h, c))
            x = h
        return x @ self.head[0] + self.head[1], new_states

    def generate(self, prompts, steps, temperature, seed=0):
        """`steps` characters after each prompt (all of one length): argmax at temperature 0, else a draw."""
        torch = self.torch
        generator = torch.Generator().manual_seed(seed)
        index = {ch: i for i, ch in enumerate(self.vocabulary)}
        with torch.no_grad():
            ids = torch.tensor([[index[ch] for ch in prompt] for prompt in prompts])  # (B, L)
            units = self.layers[0][1].shape[0]
            states = [(torch.zeros(len(prompts), units), torch.zeros(len(prompts), units)) for _ in self.layers]
            for t in range(ids.shape[1]):
                logits, states = self.step(ids[:, t], states)
            drawn = []
            for t in range(steps):
                if temperature == 0:
                    token = logits.argmax(dim=-1)
                else:
                    probabilities = torch.softmax(logits / temperature, dim=-1)
                    token = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
                drawn.append(token)
                if t + 1 < steps:
                    logits, states = self.step(token, states)
        return ["".join(self.vocabulary[i] for i in row) for row in torch.stack(drawn, dim=1).tolist()]


def newest_version(name="char_lstm"):
    versions = [p for p in (ROOT / "saved_models" / name).iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name))


def zoo_generate(generate, rows, sizes, temperature, prompt):
    """Texts of `generate` chained over calls of `sizes` characters, as a streaming client calls it."""
    import tensorflow as tf

    prompts, state, done, texts = [prompt] * rows, np.zeros((rows, generate.state_width), np.float32), 0, [""] * rows
    for steps in sizes:
        out = generate(
            prompt=tf.constant(prompts), state=tf.constant(state), steps=tf.constant([steps] * rows, tf.int32),
            temperature=tf.constant([temperature] * rows, tf.float32), top_k=tf.constant([0] * rows, tf.int32),
            seed=tf.constant(list(range(rows)), tf.int64), position=tf.constant([done] * rows, tf.int64),
        )
        pieces = [t.decode("utf-8") for t in out["text"].numpy()]
        texts = [text + piece for text, piece in zip(texts, pieces)]
        prompts = [piece[-1:] for piece in pieces]
        state, done = out["state"].numpy(), done + steps
    return texts


def greedy_pair(generate, net, prompt, chars=GREEDY_CHARS):
    """The first `chars` greedy characters of the exported `generate` and of the PyTorch copy."""
    return zoo_generate(generate, 1, [chars], 0.0, prompt)[0], net.generate([prompt], chars, 0.0)[0]


class _Generate:
    """A loaded `generate` function (a signature, or its whole-kernel form) and the width of its state."""

    def __init__(self, function, state_width):
        self.function, self.state_width = function, state_width

    def __call__(self, **inputs):
        return self.function(**inputs)


def load_generation_pair():
    """The shipped char_lstm's `generate` paths and its PyTorch copy; raises if their greedy texts differ.

    Returns:
        `(folder, paths, net, greedy text)`. `paths["zoo"]` is the exported signature, as stock TF Serving
        runs it; `paths["server"]`, where the embedded server runs another form of it on this process's
        threads (`serving.servable`: the whole-kernel form on one thread), that form.
    """
    import tensorflow as tf

    import zoo
    from zoo.export import loaded_forms
    from zoo.layers._loop import runs_on_one_thread

    folder = newest_version()
    loaded = tf.saved_model.load(str(folder))
    signature = loaded.signatures["generate"]
    width = int(signature.structured_input_signature[1]["state"].shape[-1])
    paths = {"zoo": _Generate(signature, width)}
    form = loaded_forms(loaded).get("generate") if runs_on_one_thread() else None
    if form is not None:
        paths["server"] = _Generate(form, width)
    net = TorchCharLM(zoo.get("char_lstm", weights="default"))
    from benchmarks.serving_load import PROMPT

    torch_text = net.generate([PROMPT], GREEDY_CHARS, 0.0)[0]
    for path, generate in paths.items():
        zoo_text = zoo_generate(generate, 1, [GREEDY_CHARS], 0.0, PROMPT)[0]
        if zoo_text != torch_text:
            raise RuntimeError(f"The PyTorch copy of char_lstm is not the shipped model: its first {GREEDY_CHARS} "
                               f"greedy characters differ. zoo ({path}): {zoo_text!r}, PyTorch: {torch_text!r}")
    return folder, paths, net, torch_text


def measure_generation(batches, tokens, rounds):
    """Characters/s of each `generate` path (`load_generation_pair`) and of PyTorch, and their ratios. The bars
    judge the path the embedded server runs on these threads: the whole-kernel form where there is one."""
    from benchmarks.serving_load import PROMPT, TEMPERATURE
    from serving.streaming import chunk_sizes

    folder, paths, net, greedy = load_generation_pair()
    served = "server" if "server" in paths else "zoo"
    ratios = [f"{path}_{calls}/pytorch" for path in paths for calls in ("one_call", "chunks")]
    rows_out = []
    for rows in batches:
        contenders = {"pytorch": lambda rows=rows: net.generate([PROMPT] * rows, tokens, TEMPERATURE)}
        for path, generate in paths.items():
            contenders[f"{path}_one_call"] = lambda rows=rows, generate=generate: zoo_generate(
                generate, rows, [tokens], TEMPERATURE, PROMPT)
            contenders[f"{path}_chunks"] = lambda rows=rows, generate=generate: zoo_generate(
                generate, rows, chunk_sizes(tokens), TEMPERATURE, PROMPT)
        for run in contenders.values():
            run()  # the first call traces
        wall, cpu = interleaved(contenders, rounds, 1)
        bars = {f"{served}_{calls}/pytorch": GENERATION_BARS[rows] for calls in ("one_call", "chunks")
                if rows in GENERATION_BARS}
        summary = summarize(wall, cpu, rows * tokens, ratios, bars)
        rows_out.append({"batch": rows, "characters": tokens, "rounds": rounds, "chunk_sizes": chunk_sizes(tokens),
                         "chars_per_s": summary["per_s"], "cpu_chars_per_s": summary["cpu_per_s"],
                         "ratios": summary["ratios"], "bars": summary["bars"]})
    return {"model": "char_lstm", "version": int(folder.name), "prompt": PROMPT, "temperature": TEMPERATURE,
            "paths": {"zoo": "the exported `generate` signature, as stock TF Serving runs it",
                      **({"server": "its whole-kernel form, which the embedded server runs on one thread"}
                         if served == "server" else {})},
            "bars_judge": served,
            "greedy_check": {"characters": GREEDY_CHARS, "identical": True, "paths": sorted(paths), "text": greedy},
            "rows": rows_out}


# -- memory ------------------------------------------------------------------------------------------------------
def current_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("/proc/self/status has no VmRSS line")


def measure_memory(contender, family, batch, units, time_steps, threads, steps, out_dir):
    """Peak RSS (MiB) of `steps` training steps in this (fresh) process, and how far it rose over the RSS
    before the first step (the model and optimizer built, nothing traced or run)."""
    config = PeerConfig(family=family, units=units, time_steps=time_steps, batch_size=batch, threads=threads,
                        out_dir=str(out_dir / "memory"))
    step = trainer_step(config) if contender == "zoo" else torch_step(config)
    before, peak_before = current_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(steps):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"contender": contender, "family": family, "batch": batch, "units": units, "time_steps": time_steps,
            "threads": threads, "steps": steps, "rss_before_first_step_mib": before,
            "peak_rss_before_first_step_mib": peak_before, "peak_rss_mib": peak, "peak_over_before_mib": peak - before}


# -- processes ---------------------------------------------------------------------------------------------------
def run_worker(spec, xla_flags=None):
    """Runs `spec` in a fresh Python process (`--worker`) and returns what it measured.

    `xla_flags` replaces the process's `XLA_FLAGS` (XLA reads them once, at its first compile).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "out.json"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
        if xla_flags is not None:
            env["XLA_FLAGS"] = xla_flags
        subprocess.run([sys.executable, "-m", "benchmarks.peers", "--worker", json.dumps(spec), "--worker-out",
                        str(out)], check=True, cwd=ROOT, env=env)
        return json.loads(out.read_text())


def worker(spec):
    threads = spec["threads"]
    import torch

    from training.runs import limit_cpu_threads

    limit_cpu_threads(threads)  # before TensorFlow's first op
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = pathlib.Path(tmp)
        if spec["kind"] == "memory":
            return measure_memory(spec["contender"], spec["family"], spec["batch"], spec["units"],
                                  spec["time_steps"], threads, spec["steps"], out_dir)
        # Other processes' load moves every contender's figure; a PyTorch pool of several threads on a
        # machine with no idle core can collapse (its threads wait on each other), so the load is recorded.
        result = {"threads": threads, "load_average_before": list(os.getloadavg()), "training": [],
                  "generation": None}
        if spec.get("peak_size"):
            result["gemm_peak"] = measure_gemm_peak(spec["peak_size"], spec["rounds"], spec["min_block_seconds"])
            print(json.dumps({"threads": threads, "gemm_peak": result["gemm_peak"]["gflops_per_s"]}), flush=True)
        for family, batch, units in spec["shapes"]:
            row = measure_training(family, batch, units, spec["time_steps"], spec["rounds"], threads, out_dir,
                                   spec["min_block_seconds"])
            print(json.dumps({"threads": threads, **{k: row[k] for k in ("family", "batch", "units", "bars")}}),
                  flush=True)
            result["training"].append(row)
        if spec["generation_batches"]:
            result["generation"] = measure_generation(spec["generation_batches"], spec["tokens"], spec["rounds"])
            print(json.dumps({"threads": threads, "generation": [r["bars"] for r in result["generation"]["rows"]]}),
                  flush=True)
        result["load_average_after"] = list(os.getloadavg())
        return result


def bar_summary(by_threads):
    """How many judged ratios met their bar, and which missed, over every thread count."""
    missed, total = [], 0
    for threads, part in by_threads.items():
        rows = part["training"] + (part["generation"]["rows"] if part["generation"] else [])
        for row in rows:
            for name, verdict in row["bars"].items():
                total += 1
                if not verdict["met"]:
                    shape = {k: row[k] for k in ("family", "batch", "units") if k in row}
                    missed.append({"threads": threads, "ratio": name, **shape, "value": verdict["value"],
                                   "bar": verdict["bar"]})
    return {"judged": total, "met": total - len(missed), "missed": missed}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", action="append", choices=FAMILIES, help="repeatable; default all three")
    parser.add_argument("--batch", action="append", type=int, help="repeatable; default 32 and 128")
    parser.add_argument("--units", action="append", type=int, help="H = I, repeatable; default 128, 512, 1024")
    parser.add_argument("--time-steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--min-block-seconds", type=float, default=0.5, help="least wall time of one timing")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square product of `peak`")
    parser.add_argument("--generation-batch", action="append", type=int, help="repeatable; default 1 and 32")
    parser.add_argument("--tokens", type=int, default=500, help="characters generated per row")
    parser.add_argument("--memory-shape", type=int, nargs=3, default=[128, 1024, 100], metavar=("B", "H", "T"))
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--memory-threads", type=int, default=1)
    parser.add_argument("--out", help="results file; default benchmarks/results/peers_<backend>_<device>.json")
    parser.add_argument("--keep-other-parts", action="store_true",
                        help="take the parts not run now from the results file already at the output path; "
                             "`parts_measured_by` says which command and machine state measured each part")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        pathlib.Path(args.worker_out).write_text(json.dumps(worker(json.loads(args.worker))))
        return
    import keras

    from benchmarks.machine import describe_machine, write_results

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"the zoo's Trainer runs on TensorFlow; this backend is {keras.backend.backend()!r}")
    machine = describe_machine()
    device = "gpu" if machine["accelerators"] else "cpu"
    out = pathlib.Path(args.out or ROOT / "benchmarks" / "results" / f"peers_{machine['backend']}_{device}.json")
    shapes = [(f, b, h) for f in args.family or FAMILIES for b in args.batch or (32, 128)
              for h in args.units or (128, 512, 1024)] if "training" in args.parts else []
    generation_batches = (args.generation_batch or [1, 32]) if "generation" in args.parts else []
    peak_size = args.peak_size if "peak" in args.parts else 0
    load_before = os.getloadavg()
    by_threads = {}
    for threads in args.threads:
        if shapes or generation_batches or peak_size:
            by_threads[str(threads)] = run_worker({
                "kind": "speed", "threads": threads, "shapes": shapes, "time_steps": args.time_steps,
                "rounds": args.rounds, "min_block_seconds": args.min_block_seconds,
                "generation_batches": generation_batches, "tokens": args.tokens, "peak_size": peak_size})
    memory = []
    if "memory" in args.parts:
        batch, units, time_steps = args.memory_shape
        for family in args.family or FAMILIES:
            pair = {contender: run_worker({"kind": "memory", "contender": contender, "family": family,
                                           "batch": batch, "units": units, "time_steps": time_steps,
                                           "threads": args.memory_threads, "steps": args.memory_steps})
                    for contender in ("zoo", "pytorch")}
            ratio = pair["zoo"]["peak_rss_mib"] / pair["pytorch"]["peak_rss_mib"]
            memory.append({"family": family, **pair, "peak_ratio_zoo_over_pytorch": ratio})
            print(json.dumps({"memory": family, **{k: v["peak_rss_mib"] for k, v in pair.items()}}), flush=True)
    import torch

    result = {
        "machine": {**machine, "torch": torch.__version__},
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "command": "python -m benchmarks.peers " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"time_steps": args.time_steps, "rounds": args.rounds, "threads": args.threads,
                     "min_block_seconds": args.min_block_seconds, "dtype": "float32",
                     "optimizer": f"Adam, learning rate {PeerConfig.learning_rate}, global-norm clip "
                                  f"{PeerConfig.clipnorm} (TrainConfig's defaults)",
                     "loss": "mean squared error of the last output against fixed random targets",
                     "ratio": "a/b = b's time per call over a's in the same round (> 1: a is faster); bars judge "
                              "the median over rounds in wall time"},
        "bars": {"training": TRAINING_BARS, "generation_zoo_over_pytorch_by_batch": GENERATION_BARS},
        "threads": by_threads,
        "memory": memory,
        "memory_note": "every worker imports both TensorFlow and PyTorch (the harness is one module), so the "
                       "absolute RSS counts both libraries; peak_over_before_mib is what the steps added",
        "bar_summary": bar_summary(by_threads),
    }
    provenance = {"command": result["command"], "cpu": machine.get("cpu"), "measured_at": machine.get("measured_at"),
                  "load_average_before": result["load_average_before"],
                  "load_average_after": result["load_average_after"]}
    result["parts_measured_by"] = {part: provenance for part in args.parts}
    if args.keep_other_parts and out.exists():
        result = with_parts_of(json.loads(out.read_text()), result, args.parts)
    flop_rates(result["threads"])
    write_results(result, out)


def with_parts_of(previous, result, measured):
    """`result` with the parts it did not measure taken from `previous` (same grid shape, other runs)."""
    kept = [part for part in PARTS if part not in measured]
    earlier = previous.get("parts_measured_by") or {part: {"command": previous.get("command")} for part in kept}
    for part in kept:
        if part == "memory":
            result["memory"] = previous["memory"]
        else:
            key = "gemm_peak" if part == "peak" else part
            for threads, entry in previous["threads"].items():
                result["threads"].setdefault(threads, {"threads": int(threads), "training": [], "generation": None})
                if key in entry:
                    result["threads"][threads][key] = entry[key]
        # A kept part was measured on the previous file's machine, which `result["machine"]` no longer names.
        result["parts_measured_by"][part] = {"cpu": previous.get("machine", {}).get("cpu"),
                                             **(earlier.get(part) or {})}
    result["bar_summary"] = bar_summary(result["threads"])
    return result


if __name__ == "__main__":
    main()
