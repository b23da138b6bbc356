"""Many clients streaming at once: the server under load, with batching on and off.

    python -m benchmarks.serving_load                    # 32 REST + 32 gRPC clients, 500 characters each
    python -m benchmarks.serving_load --clients 4 --tokens 40 --out /tmp/quick.json

The shipped `char_lstm` is served by `python -m serving` in a child process
(so its RSS is the server's alone), once with `--enable_batching` (TF
Serving's request batching, plus continuous batching of `generate`) and once
without; then twice more with batching on and every client on one protocol,
REST or gRPC, which tells what each protocol costs; then once more mixed with
`--freeze_heap=false`, which tells what keeping the loaded models out of the
garbage collector's full passes saves (`serving.heap`), once with the
server's TensorFlow threads left to TensorFlow (`--tensorflow_*_op_parallelism=0`), and once with the
generation lane's chunks of 8 characters (`--generation_chunk_steps=8`), and twice more all on REST: with
the streams calling `generate`, the state as JSON numbers, instead of `generate_bytes`, and with the client's calls
through `requests` instead of urllib3 (`serving.client`'s REST transport before). Each client (a thread; the
64 spread over `--client-processes` processes, so that the load generator's own
interpreter lock does not pace it) streams `--tokens` characters through
`Client.stream` (its default pieces: 16 characters, then doubling up to 128,
the last taking a short tail along), all starting together, half over REST and
half over gRPC, each with its own seed. Per run: aggregate characters per
second (all characters over the wall time from the first start to the last
end), time to first piece (from the call to `Client.stream`, which includes
pinning the version) and between pieces (p50, p99), the server's and the
clients' CPU time, the server's RSS after a warm-up stream and after the run,
and the errors.

The server gets a request thread per client on either protocol (`--grpc_max_threads` and
`--rest_api_num_threads`, `handler_flags`). Server and reference run TensorFlow on the same
threads: `--tensorflow-intra-op` (1) and `--tensorflow-inter-op` (one per core), the server through TF Serving's
`--tensorflow_intra_op_parallelism` and `--tensorflow_inter_op_parallelism`
(one intra-op thread served 1.1x the characters per second on two cores).

The reference is the same SavedModel version's `generate` signature called
in this process at batch `--clients` (64), chained in the clients' calls of
the same sizes until every row has `--tokens` characters: the same work, with no serving at
all, measured before the first run and after every run, so that each run's
ratio is against the mean of the two references either side of it (the
machine's speed drifts). The runs are repeated in `--rounds` rounds (3; the
order of the runs reversed every other round). Each run reports its median
round, and every round's headline figures beside it. Each run also records the
server's generation counters (`serving.metrics`): the lane's calls, the steps
they ran and the characters they drew, so how many rows a step carried.
Results: `benchmarks/results/serving_load.json`, with the machine and its load
average.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from benchmarks.machine import describe_machine, write_results
from serving.execution import DEFAULT_GENERATION_CHUNK_STEPS
from serving.streaming import chunk_sizes

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROMPT = "ROMEO."
TEMPERATURE = 0.8
# run name -> (batching on, every client on this protocol (None = half REST, half gRPC), more server flags)
RUNS = {"batching_on": (True, None, ()), "batching_off": (False, None, ()), "batching_on_rest_only": (True, "rest", ()),
        "batching_on_grpc_only": (True, "grpc", ()),
        "batching_on_heap_unfrozen": (True, None, ("--freeze_heap=false",)),
        # The server on TensorFlow's own thread choice (the reference keeps --tensorflow-intra-op's).
        "batching_on_tensorflow_default_threads": (
            True, None, ("--tensorflow_intra_op_parallelism=0", "--tensorflow_inter_op_parallelism=0")),
        # The lane's chunks of 8 characters, the default before 16.
        "batching_on_chunks_of_8": (True, None, ("--generation_chunk_steps=8",)),
        # All on REST calling `generate`, the state as JSON numbers, as streams did before `generate_bytes`.
        "batching_on_rest_state_as_numbers": (True, "rest", ()),
        # All on REST with the client's calls through `requests`, as before its transport went to urllib3.
        "batching_on_rest_client_requests": (True, "rest", ())}
# Runs whose clients differ from `Client.stream`'s defaults: REST streams calling `generate` where they would call
# `generate_bytes`, or REST calls through a `requests.Session` instead of urllib3.
CLIENT_VARIANTS = {"batching_on_rest_state_as_numbers": "state_as_numbers",
                   "batching_on_rest_client_requests": "requests"}
BARS = {"ratio_min": 0.6, "errors_max": 0, "rss_growth_max": 0.10, "first_piece_p99_s_max": 1.0}


def _percentiles(values):
    if not values:
        return {"p50": None, "p99": None}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


def _rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def _cpu_seconds(pid):
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process_reference(model_dir, rows, tokens, chunk):
    """A function measuring (characters per second, CPU seconds) of `generate` in this process at batch `rows`,
    chained in the clients' calls; the model is loaded, and the function traced, once.

    `chunk` is `Client.stream`'s `chunk_size` (None: its growing default), so
    the reference makes the same calls of the same sizes as every client.
    """
    import tensorflow as tf

    generate = tf.saved_model.load(str(model_dir)).signatures["generate"]
    width = int(generate.structured_input_signature[1]["state"].shape[-1])

    def run():
        prompt, state, done = [PROMPT] * rows, np.zeros((rows, width), np.float32), 0
        for steps in chunk_sizes(tokens, chunk):
            out = generate(
                prompt=tf.constant(prompt), state=tf.constant(state), steps=tf.constant([steps] * rows, tf.int32),
                temperature=tf.constant([TEMPERATURE] * rows, tf.float32), top_k=tf.constant([0] * rows, tf.int32),
                seed=tf.constant(list(range(rows)), tf.int64), position=tf.constant([done] * rows, tf.int64),
            )
            prompt = [t.decode("utf-8")[-1:] for t in out["text"].numpy()]
            state, done = out["state"].numpy(), done + steps

    def measure():
        start, cpu = time.perf_counter(), time.process_time()
        run()
        return rows * tokens / (time.perf_counter() - start), time.process_time() - cpu

    run()  # warm-up: the first call traces
    return measure


def generation_counts(rest_target, model="char_lstm"):
    """The server's generation counters for `model` (`serving.metrics`): {"calls", "steps", "row_steps"}."""
    import urllib3

    from serving.metrics import GENERATION_COUNTERS

    base = rest_target if "://" in rest_target else f"http://{rest_target}"
    text = urllib3.request("GET", base + "/monitoring/prometheus/metrics", timeout=30).data.decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(f'{{model_name="{model}"}} ')
        if name in GENERATION_COUNTERS and value:
            values[name] = int(float(value))
    counts = (values.get(name, 0) for name in GENERATION_COUNTERS)
    return dict(zip(("calls", "steps", "row_steps"), counts, strict=True))


def handler_flags(clients):
    """A request thread per client on either protocol: a `generate` request holds its thread while its rows are in
    the lane, so with fewer threads than streams the rest queue outside it (all 64 on REST with the default 40:
    1.1x slower, a session A/B)."""
    return [f"--grpc_max_threads={clients}", f"--rest_api_num_threads={clients}"]


def thread_flags(intra_op, inter_op):
    """The server's TensorFlow thread flags (TF Serving's), which the in-process reference runs with too."""
    return [f"--tensorflow_intra_op_parallelism={intra_op}", f"--tensorflow_inter_op_parallelism={inter_op}"]


def _start_server(model_dir, batching_file, request_threads, chunk_steps=None, extra_flags=(), threads=(0, 0)):
    command = [
        sys.executable, "-m", "serving", "--port=0", "--rest_api_port=0", "--model_name=char_lstm",
        f"--model_base_path={model_dir.parent}", "--file_system_poll_wait_seconds=0",
        *handler_flags(request_threads), *thread_flags(*threads), *extra_flags,
    ]
    if chunk_steps is not None:
        command.append(f"--generation_chunk_steps={chunk_steps}")
    if batching_file is not None:
        command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    line = process.stdout.readline()
    if not line.startswith("Serving gRPC on"):
        process.kill()
        raise RuntimeError(f"The server did not start: {line!r}")
    grpc_target, rest_target = line.strip()[len("Serving gRPC on "):].split(" and REST on ")
    return process, {"grpc": grpc_target, "rest": rest_target}


def _client_stream(targets, protocol, seed, tokens, chunk, barrier):
    """(first piece s, gaps between pieces s, characters, error text) of one client's stream."""
    from serving.client import Client

    with Client(targets[protocol], protocol=protocol, timeout=120) as client:
        barrier.wait()
        start = last = time.perf_counter()
        first, gaps, count = None, [], 0
        try:
            for piece in client.stream("char_lstm", PROMPT, tokens, TEMPERATURE, 0, seed, chunk):
                now = time.perf_counter()
                if first is None:
                    first = now - start
                else:
                    gaps.append(now - last)
                last, count = now, count + len(piece)
        except Exception as error:  # counted, not raised: the run goes on
            return first, gaps, count, f"{type(error).__name__}: {error}"[:300]
        return first, gaps, count, None


def _requests_transport():
    """`serving.client`'s REST transport with every call through a `requests.Session`, as it was before urllib3."""
    import requests

    from serving import client

    class RequestsTransport(client._RestTransport):
        def __init__(self, target, timeout):
            super().__init__(target, timeout)
            self.session = requests.Session()  # keep-alive; the environment read once, as the transport did
            self.session.trust_env = False
            self.timeout_s = timeout

        def _call(self, method, path, body=None):
            headers = {"Content-Type": "application/json"} if body is not None else None
            reply = self.session.request(method, self.base + path, data=body, headers=headers, timeout=self.timeout_s)
            if reply.status_code != 200:
                raise client.from_http_status(reply.status_code, reply.text)
            return json.loads(reply.content)

    return RequestsTransport


def _client_process(targets, jobs, tokens, chunk, start, client_variant=None):
    """One load-generating process: a thread per (protocol, seed) job, all released by `start`.

    `client_variant` (`CLIENT_VARIANTS`' values) changes this process's clients: "state_as_numbers", every stream
    calls `generate`, whatever the protocol; "requests", REST calls go through `requests`.
    Returns (each job's `_client_stream` result, this process's CPU seconds from the start to the end).
    """
    if client_variant == "state_as_numbers":
        from serving import streaming

        streaming._signature_for = lambda client, signatures: "generate"  # this process's streams only
    elif client_variant == "requests":
        from serving import client

        client._RestTransport = _requests_transport()
    local = threading.Barrier(len(jobs) + 1)
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(_client_stream, targets, protocol, seed, tokens, chunk, local)
                   for protocol, seed in jobs]
        start.wait()  # every process has its clients connected
        local.wait()
        cpu = time.process_time()
        results = [f.result() for f in futures]
    return results, time.process_time() - cpu


def served_run(model_dir, batching_file, clients, tokens, request_threads, chunk=None, chunk_steps=None,
               client_processes=4, only=None, extra_flags=(), threads=(0, 0), client_variant=None):
    """The figures of one run of `clients` concurrent streams against a fresh server.

    The clients are spread over `client_processes` processes: 64 client threads in one Python process
    queue on its interpreter lock, and the load generator, not the server, then sets the time to first piece.
    `only` ("rest" or "grpc") puts every client on that protocol instead of half on each; `extra_flags` go to
    the server's command line, and `threads` (intra-op, inter-op; 0 = TensorFlow's choice) to its thread flags.
    `client_variant` changes the clients (`_client_process`).
    """
    from serving.client import Client

    process, targets = _start_server(model_dir, batching_file, request_threads, chunk_steps, extra_flags, threads)
    try:
        with Client(targets["grpc"], protocol="grpc") as client:  # warm: one stream through the whole path
            "".join(client.stream("char_lstm", PROMPT, 64, TEMPERATURE))
        counts_before = generation_counts(targets["rest"])
        rss_before = _rss_bytes(process.pid)
        protocols = [only or ("rest" if i % 2 == 0 else "grpc") for i in range(clients)]
        jobs = [(protocol, seed) for seed, protocol in enumerate(protocols)]
        shares = [jobs[i::client_processes] for i in range(client_processes) if jobs[i::client_processes]]
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, concurrent.futures.ProcessPoolExecutor(len(shares), context) as pool:
            start_barrier = manager.Barrier(len(shares) + 1)
            futures = [pool.submit(_client_process, targets, share, tokens, chunk, start_barrier, client_variant)
                       for share in shares]
            start_barrier.wait()
            start, server_cpu = time.perf_counter(), _cpu_seconds(process.pid)
            per_process = [f.result() for f in futures]
            wall = time.perf_counter() - start
            server_cpu = _cpu_seconds(process.pid) - server_cpu
        results = [r for process_results, _ in per_process for r in process_results]
        client_cpu = sum(cpu for _, cpu in per_process)
        rss_after = _rss_bytes(process.pid)
        counts = {key: value - counts_before[key] for key, value in generation_counts(targets["rest"]).items()}
    finally:
        process.terminate()
        exit_code = process.wait(60)
    errors = [r[3] for r in results if r[3] is not None]
    characters = sum(r[2] for r in results)
    return {
        "clients": clients,
        "clients_rest": protocols.count("rest"),
        "clients_grpc": protocols.count("grpc"),
        "tokens_per_client": tokens,
        "characters": characters,
        "wall_s": wall,
        "chars_per_s": characters / wall,
        "server_cpu_s": server_cpu,
        "clients_cpu_s": client_cpu,
        "client_processes": len(shares),
        "first_piece_s": _percentiles([r[0] for r in results if r[0] is not None]),
        "between_pieces_s": _percentiles([g for r in results for g in r[1]]),
        "server_rss_before_bytes": rss_before,
        "server_rss_after_bytes": rss_after,
        "server_rss_growth": (rss_after - rss_before) / rss_before,
        # The generation engine's calls during the run, the steps they ran and the characters they drew
        # (`serving.metrics`): the in-process reference runs `tokens` steps, each carrying every row.
        "generation": {**counts, "rows_per_step": counts["row_steps"] / counts["steps"] if counts["steps"] else None},
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "server_exit_code_on_sigterm": exit_code,
    }


def _verdicts(run, reference):
    ratio = run["chars_per_s"] / reference
    return {
        "in_process_chars_per_s": reference,  # this run's: the mean of the measurements either side of it
        "ratio_to_in_process": ratio,
        "bars": {
            "ratio_at_least_60_percent": ratio >= BARS["ratio_min"],
            "zero_errors": run["errors"] <= BARS["errors_max"],
            "rss_growth_under_10_percent": run["server_rss_growth"] < BARS["rss_growth_max"],
            "first_piece_p99_under_1_s": (run["first_piece_s"]["p99"] or float("inf")) < BARS["first_piece_p99_s_max"],
        },
    }


def _median_round(rounds):
    """The round with the median ratio to in-process, with every round's headline figures beside it."""
    ratios = [run["ratio_to_in_process"] for run in rounds]
    median = dict(sorted(rounds, key=lambda run: run["ratio_to_in_process"])[(len(rounds) - 1) // 2])
    median["ratio_median_round"] = {"min": min(ratios), "max": max(ratios), "rounds": len(rounds)}
    median["errors_all_rounds"] = sum(run["errors"] for run in rounds)
    median["bars"] = {**median["bars"], "zero_errors": median["errors_all_rounds"] <= BARS["errors_max"]}
    median["rounds"] = [
        {key: run[key] for key in ("chars_per_s", "in_process_chars_per_s", "ratio_to_in_process", "server_cpu_s",
                                   "clients_cpu_s", "errors", "server_exit_code_on_sigterm")}
        | {"first_piece_p99_s": run["first_piece_s"]["p99"], "generation": run["generation"]}
        for run in rounds
    ]
    return median


def batching_parameters(clients):
    """The parameters file of the batching run: every client's rows fit one lane."""
    return (
        f"max_batch_size {{ value: {clients} }}\n"
        "batch_timeout_micros { value: 0 }\n"
        "max_enqueued_batches { value: 16 }\n"
        "num_batch_threads { value: 2 }\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent streams, half REST, half gRPC")
    parser.add_argument("--tokens", type=int, default=500, help="characters per stream")
    parser.add_argument("--chunk", type=int, default=None,
                        help="Client.stream's chunk_size (default: its default, pieces growing from 16 to 128)")
    parser.add_argument("--generation-chunk-steps", type=int, default=None,
                        help="the server's --generation_chunk_steps (default: the server's default)")
    parser.add_argument("--client-processes", type=int, default=4, help="processes the client threads are spread over")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS),
                        help="which runs (default all): the issue's two; batching on with every client on one "
                        "protocol, which splits the serving cost between REST and gRPC; batching on with the heap "
                        "left unfrozen (--freeze_heap=false), what serving.heap saves; batching on with the server's "
                        "TensorFlow threads left to TensorFlow")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every run, in alternating order, with the reference between rounds")
    parser.add_argument("--tensorflow-intra-op", type=int, default=1,
                        help="TensorFlow's intra-op threads in the server and the reference (default 1; 0: "
                        "TensorFlow's choice)")
    parser.add_argument("--tensorflow-inter-op", type=int, default=os.cpu_count() or 1,
                        help="TensorFlow's inter-op threads in the server and the reference (default: one per core)")
    parser.add_argument("--out", default="benchmarks/results/serving_load.json")
    args = parser.parse_args(argv)
    threads = (args.tensorflow_intra_op, args.tensorflow_inter_op)
    import tensorflow as tf  # the reference's pools, before its first op, as the server's flags size the server's

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    except RuntimeError:  # TensorFlow already ran ops in this process (a test's): the file records what it has
        print("The in-process reference runs on the thread pools TensorFlow already made in this process", flush=True)
    from serving.repository import scan_versions

    base = ROOT / "saved_models" / "char_lstm"
    version = max(scan_versions(base))
    model_dir = base / str(version)
    load_before = os.getloadavg()
    reference, reference_cpu, rounds = [], [], {name: [] for name in args.runs}
    in_process = in_process_reference(model_dir, args.clients, args.tokens, args.chunk)

    def measure_reference():
        rate, cpu = in_process()
        reference.append(rate)
        reference_cpu.append(cpu)
        print(f"in-process generate at batch {args.clients}: {rate:,.0f} chars/s", flush=True)

    measure_reference()
    with tempfile.TemporaryDirectory() as tmp:
        params = pathlib.Path(tmp) / "batching_parameters.txt"
        params.write_text(batching_parameters(args.clients))
        for round_index in range(args.rounds):
            order = args.runs if round_index % 2 == 0 else args.runs[::-1]
            for name in order:
                batching, only, extra_flags = RUNS[name]
                run = served_run(model_dir, params if batching else None, args.clients, args.tokens, args.clients,
                                 args.chunk, args.generation_chunk_steps, args.client_processes, only, extra_flags,
                                 threads, CLIENT_VARIANTS.get(name))
                measure_reference()
                # Each run against the in-process rate measured just before and just after it.
                run.update(_verdicts(run, float(np.mean(reference[-2:]))))
                rounds[name].append(run)
                print(f"round {round_index + 1} {name}: {run['chars_per_s']:,.0f} chars/s, "
                      f"{run['ratio_to_in_process']:.0%} of in-process, first piece p99 "
                      f"{run['first_piece_s']['p99']:.2f} s, errors {run['errors']}", flush=True)
    runs = {name: _median_round(done) for name, done in rounds.items()}
    mean_reference = float(np.mean(reference))
    result = {
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "model": "char_lstm",
        "version": version,
        "prompt": PROMPT,
        "temperature": TEMPERATURE,
        "client_chunk_size": args.chunk,
        "client_chunk_sizes": chunk_sizes(args.tokens, args.chunk),
        "batching_parameters": batching_parameters(args.clients),
        # The flags of every batching_on run, the other batching_on_* runs adding server_flags_extra's.
        "server_flags_batching_on": ["--enable_batching", "--batching_parameters_file=<the parameters above>",
                                     *handler_flags(args.clients), *thread_flags(*threads)],
        "server_flags_extra": {name: list(RUNS[name][2]) for name in args.runs if RUNS[name][2]},
        "rest_streams_call": {name: "generate" if CLIENT_VARIANTS.get(name) == "state_as_numbers" else "generate_bytes"
                              for name in args.runs},
        "rest_client_transport": {name: "requests" if CLIENT_VARIANTS.get(name) == "requests" else "urllib3"
                                  for name in args.runs},
        "server_flags_batching_off": [*handler_flags(args.clients), *thread_flags(*threads)],
        "tensorflow_threads": {"intra_op": threads[0], "inter_op": threads[1]},  # the server's flags
        "reference_tensorflow_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                         "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "generation_chunk_steps": args.generation_chunk_steps or DEFAULT_GENERATION_CHUNK_STEPS,
        "rounds": args.rounds,
        "in_process_chars_per_s": reference,  # before the first run and after each
        "in_process_chars_per_s_mean": mean_reference,
        "in_process_cpu_s": reference_cpu,  # for all clients' characters once, against each run's server_cpu_s
        "runs": runs,
    }
    out = ROOT / args.out if not pathlib.Path(args.out).is_absolute() else pathlib.Path(args.out)
    for name, run in runs.items():
        spread = run["ratio_median_round"]
        print(f"{name}: {run['ratio_to_in_process']:.0%} of in-process "
              f"(rounds {spread['min']:.0%}-{spread['max']:.0%}); bars {run['bars']}")
    write_results(result, out)


if __name__ == "__main__":
    main()
