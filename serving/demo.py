"""`python -m serving.demo` (what `make demo` runs): serve the shipped models, stream a sample.

Starts the embedded server on every model under `saved_models/` (free ports on
127.0.0.1) with batching on, as `serving/deploy/` runs TF Serving
(`batching_parameters.txt`), and the model browser on its REST port, whose
address it prints; streams text from `char_lstm` through `serving.client.Client`
exactly as a client of real TF Serving would, printing each piece as its
`generate` call returns, then stops the server, or with `--keep-serving` (as
`make demo` runs it) keeps serving the browser until Ctrl-C.

    python -m serving.demo --prompt "JULIET." --tokens 600 --temperature 0.7 --protocol rest
"""

import argparse
import pathlib
import sys
import threading
import time

__all__ = ["main", "shipped_models"]

_DEFAULT_MODELS = pathlib.Path(__file__).resolve().parents[1] / "saved_models"
BATCHING_PARAMETERS = pathlib.Path(__file__).resolve().parent / "deploy" / "batching_parameters.txt"


def shipped_models(models_dir):
    """`ModelConfig`s for each folder of `models_dir` holding an integer-named SavedModel version."""
    from serving.repository import ModelConfig, scan_versions

    bases = sorted(p for p in pathlib.Path(models_dir).iterdir() if p.is_dir())
    return [ModelConfig(base.name, str(base.resolve())) for base in bases if scan_versions(base)]


def _parser():
    parser = argparse.ArgumentParser(prog="python -m serving.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(_DEFAULT_MODELS), help="folder of served models (saved_models/)")
    parser.add_argument("--model", default="char_lstm", help="the model to stream from")
    parser.add_argument("--prompt", default="ROMEO.", help="text to continue")
    parser.add_argument("--tokens", type=int, default=500, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 = argmax; higher = more varied")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest characters (0 = all)")
    parser.add_argument("--seed", type=int, default=2, help="same seed, same text")
    parser.add_argument("--chunk-size", type=int, default=16, help="characters per generate call")
    parser.add_argument("--protocol", choices=("grpc", "rest"), default="grpc")
    parser.add_argument("--keep-serving", action="store_true",
                        help="after the sample, keep serving (the model browser too) until Ctrl-C")
    return parser


def _stream(client, args, out):
    """Writes the pieces as they arrive; returns (characters, seconds to first piece, seconds in all)."""
    start = time.perf_counter()
    stream = client.stream(args.model, args.prompt, args.tokens, args.temperature, args.top_k, args.seed,
                           chunk_size=args.chunk_size)
    print(f"Streaming {args.tokens} characters from {args.model} version {stream.checkpoint.version} over "
          f"{args.protocol}, {args.chunk_size} per call, temperature {args.temperature}, seed {args.seed}:\n",
          file=out)
    out.write(args.prompt)
    out.flush()
    first, count = None, 0
    for piece in stream:
        first = time.perf_counter() - start if first is None else first
        count += len(piece)
        out.write(piece)
        out.flush()
    return count, first, time.perf_counter() - start


def _serve_until_interrupted(stop):
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:  # Ctrl-C: leave through the server's `with`, which drains and stops it
        pass


def main(argv=None, out=sys.stdout, stop=None):
    """Runs the demo; `stop` (an Event, for tests) ends `--keep-serving` when set. Returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.tokens < 0 or args.chunk_size < 1:
        parser.error(f"--tokens must be >= 0 and --chunk-size >= 1. Received: --tokens={args.tokens}, "
                     f"--chunk-size={args.chunk_size}")
    models = shipped_models(args.models_dir)
    names = [m.name for m in models]
    if args.model not in names:
        print(f"No servable {args.model!r} under {args.models_dir}; found {names}.", file=sys.stderr)
        return 1
    print(f"Loading {', '.join(names)} from {args.models_dir} ...", file=out, flush=True)

    from serving.batching import BatchingOptions
    from serving.client import Client  # TensorFlow loads here, after the arguments are checked
    from serving.server import ModelServer

    batching = BatchingOptions.from_file(BATCHING_PARAMETERS)
    with ModelServer(
        model_config=models, port=0, rest_api_port=0, file_system_poll_wait_seconds=0, batching=batching,
        model_browser=True,
    ) as server:
        target = server.grpc_target if args.protocol == "grpc" else server.rest_target
        print(f"Serving gRPC on {server.grpc_target} and REST on {server.rest_target}", file=out)
        print(f"Model browser: {server.browser_url}", file=out, flush=True)
        with Client(target, protocol=args.protocol) as client:
            count, first, total = _stream(client, args, out)
        first_piece = f"first piece after {1000 * first:.0f} ms" if first is not None else "nothing asked for"
        summary = f"{count} characters in {total:.2f} s ({count / total:.0f} characters/s); {first_piece}."
        if args.keep_serving:
            print(f"\n\n{summary}\n\nServing until Ctrl-C. Model browser: {server.browser_url}", file=out, flush=True)
            _serve_until_interrupted(stop or threading.Event())
            summary = ""
    print(f"\n\n{summary} Server stopped." if summary else "Server stopped.", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
