"""Streaming through the server against the same `generate` signature in-process.

    python -m benchmarks.streaming                    # shipped char_lstm, chunks 1, 8, 32
    python -m benchmarks.streaming --tokens 128 --repeats 3

The reference is the very SavedModel version the server loads, its `generate`
signature called in a loop in this process with the same chunking, so the
ratio isolates what serving adds (encoding, transport, the server's checks).
For each protocol and chunk size: time to the first piece (from the call to
`Client.stream`, so it includes pinning the version and reading the state
width, as a user sees it) and characters per second over the whole stream,
medians over `--repeats` streams after one warm-up stream, the contenders
taking turns stream by stream so they share whatever load the machine has. Also the time to
first piece of the very first stream after the server starts (cold).
Results: `benchmarks/results/streaming.json`, with the machine.
"""

import argparse
import statistics
import time

import tensorflow as tf

from benchmarks.machine import describe_machine, write_results
from serving.client import Client
from serving.repository import scan_versions
from serving.server import ModelServer
from zoo import sampling
from zoo._registry import artifact_dir

PROMPT = "ROMEO."


def _time_stream(pieces):
    """(seconds to first piece, characters per second, text) of one stream."""
    start, first, text = time.perf_counter(), None, []
    for piece in pieces:
        first = time.perf_counter() - start if first is None else first
        text.append(piece)
    total = time.perf_counter() - start
    return first, sum(map(len, text)) / total, "".join(text)


def _measure_interleaved(contenders, repeats):
    """Median first-piece time and throughput of each contender, run in turn round by round.

    Interleaving puts every contender under the same background load, so the
    ratios hold on a shared machine. Returns ({name: figures}, {name: texts}).
    """
    for make_stream in contenders.values():
        _time_stream(make_stream(0))  # warm-up stream
    runs = {name: [] for name in contenders}
    for seed in range(1, repeats + 1):
        for name, make_stream in contenders.items():
            runs[name].append(_time_stream(make_stream(seed)))
    figures = {
        name: {
            "first_piece_ms": 1000 * statistics.median(r[0] for r in rs),
            "chars_per_s": statistics.median(r[1] for r in rs),
        }
        for name, rs in runs.items()
    }
    return figures, {name: [r[2] for r in rs] for name, rs in runs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="char_lstm")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/streaming.json")
    args = parser.parse_args(argv)
    base = artifact_dir(args.model)
    version = max(scan_versions(base))
    loaded = tf.saved_model.load(str(base / str(version)))
    generate = loaded.signatures["generate"]
    width = int(generate.structured_input_signature[1]["state"].shape[-1])

    rows = []
    with ModelServer(args.model, base, file_system_poll_wait_seconds=0) as server:
        clients = {"grpc": Client(server.grpc_target, protocol="grpc"), "rest": Client(server.rest_target)}
        cold_first, _, _ = _time_stream(clients["grpc"].stream(args.model, PROMPT, 8, 0.8, chunk_size=8))
        for chunk in args.chunks:
            contenders = {
                "in_process": lambda seed, c=chunk: sampling.stream_from(generate, width, PROMPT, args.tokens, 0.8, 0,
                                                                         seed, c),
                **{
                    protocol: lambda seed, c=chunk, cl=client: cl.stream(args.model, PROMPT, args.tokens, 0.8, 0,
                                                                         seed, c)
                    for protocol, client in clients.items()
                },
            }
            figures, texts = _measure_interleaved(contenders, args.repeats)
            reference = figures["in_process"]
            for protocol in clients:
                row = {
                    "protocol": protocol, "chunk_size": chunk, **figures[protocol],
                    "in_process_first_piece_ms": reference["first_piece_ms"],
                    "in_process_chars_per_s": reference["chars_per_s"],
                    "throughput_ratio": figures[protocol]["chars_per_s"] / reference["chars_per_s"],
                    "same_text_as_in_process": texts[protocol] == texts["in_process"],
                }
                rows.append(row)
                print(f"{protocol:4s} chunk {chunk:3d}: first piece {row['first_piece_ms']:7.1f} ms "
                      f"(in-process {row['in_process_first_piece_ms']:6.1f}), {row['chars_per_s']:7.0f} chars/s "
                      f"= {row['throughput_ratio']:.0%} of in-process, same text: {row['same_text_as_in_process']}",
                      flush=True)
        for client in clients.values():
            client.close()
    result = {
        "machine": describe_machine(),
        "model": args.model,
        "version": version,
        "tokens_per_stream": args.tokens,
        "repeats": args.repeats,
        "cold_first_piece_ms": 1000 * cold_first,
        "rows": rows,
    }
    print(f"cold first piece (first stream after start): {1000 * cold_first:.0f} ms")
    write_results(result, args.out)


if __name__ == "__main__":
    main()
