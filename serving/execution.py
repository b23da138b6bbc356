"""How a checked request runs a signature: directly, batched, or chunk by chunk.

The data plane checks a request, then hands it to an `Executor`:

- a signature with the `generate` contract runs through the
  `serving.generation.GenerationEngine`, `--generation_chunk_steps` at a time
  (merged with other requests' rows when batching is on), so a request past
  its deadline stops within one chunk; so does its `generate_bytes` twin
  (`serving.state_bytes`), its state unpacked into the same lane;
- with `--enable_batching`, any other signature goes through TF Serving's
  request batching (`serving.batching.BatchScheduler`), configured by
  `--batching_parameters_file`;
- otherwise the signature runs in the request's thread, as before.

`add_flags` and `server_options` hold the command-line side, so
`python -m serving` reads them without loading TensorFlow.
"""

import functools

from serving import state_bytes
from serving.batching import BatchingOptions, BatchScheduler, batch_size_of
from serving.deadline import current
from serving.errors import invalid_argument
from serving.generation import GenerationEngine, is_generate_contract

__all__ = [
    "Executor",
    "DEFAULT_GENERATION_CHUNK_STEPS",
    "DEFAULT_GRPC_MAX_THREADS",
    "DEFAULT_REST_API_NUM_THREADS",
    "add_flags",
    "server_options",
    "parse_bool",
]

# Small enough that a dropped request stops within ~50 ms and a new row, which waits for the running chunk to
# end, joins a busy lane soon (char_lstm, 64 rows: about 2 ms a step). Longer calls spread each call's fixed cost
# (about 1-3 ms) over more characters: under 64 streams the served rate with 16 was a few percent above 8's
# (benchmarks.serving_load, run batching_on_chunks_of_8), where 32 gave no more.
DEFAULT_GENERATION_CHUNK_STEPS = 16


class Executor:
    """Runs checked requests: the generation engine, the batch scheduler, or directly.

    Args:
        batching: a `serving.batching.BatchingOptions` to turn request
            batching on, or None (off).
        generation_chunk_steps: characters per `generate` call for signatures
            with the generate contract; 0 runs them whole, like any other.
        metrics: optional `serving.metrics.Metrics` counting the generation engine's calls.
    """

    def __init__(self, batching=None, generation_chunk_steps=DEFAULT_GENERATION_CHUNK_STEPS, metrics=None):
        self.batching = batching
        self.scheduler = BatchScheduler(batching) if batching is not None else None
        self.engine = None
        if generation_chunk_steps:
            merged = batching is not None
            self.engine = GenerationEngine(
                generation_chunk_steps,
                max_rows=batching.max_batch_size if merged else None,
                max_queued_rows=batching.max_batch_size * batching.max_enqueued_batches if merged else None,
                metrics=metrics,
            )

    def run(self, servable, signature_name, feeds):
        """Outputs (alias -> array) of one signature call on checked `feeds`."""
        deadline = current()
        if deadline is not None:
            deadline.check()
        if self.engine is not None:
            if is_generate_contract(servable.signature_defs[signature_name]):
                return self._generate(servable, signature_name, feeds, deadline)
            outputs = self._generate_bytes(servable, signature_name, feeds, deadline)
            if outputs is not None:
                return outputs
        run = functools.partial(servable.run, signature_name)
        if self.scheduler is not None:
            return self.scheduler.run(_key(servable, signature_name), run, feeds, deadline)
        return run(feeds)

    def _generate_bytes(self, servable, signature_name, feeds, deadline):
        """A `generate_bytes` request run in its `generate` twin's lane, or None: no twin, or a row the graph
        refuses (its check then names it, as TF Serving's does)."""
        twin = state_bytes.float_twin(servable.signature_defs, signature_name)
        state = state_bytes.unpack(feeds[state_bytes.STATE_BYTES], twin[1]) if twin is not None else None
        if state is None:
            return None
        floats = {alias: value for alias, value in feeds.items() if alias != state_bytes.STATE_BYTES}
        outputs = self._generate(servable, twin[0], {**floats, "state": state}, deadline)
        return {"text": outputs["text"], "token_ids": outputs["token_ids"],
                state_bytes.STATE_BYTES: state_bytes.pack(outputs["state"])}

    def _generate(self, servable, signature_name, feeds, deadline):
        if self.batching is not None:
            _check_task_size(feeds, self.batching)
        run = functools.partial(servable.run, signature_name)
        return self.engine.run(_key(servable, signature_name), run, feeds, deadline, servable.name)

    def stop(self):
        """Ends the batch threads and generation lanes (each within one call); requests left get UNAVAILABLE."""
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.engine is not None:
            self.engine.stop()


def _key(servable, signature_name):
    """Requests with the same key share a batch queue or generation lane."""
    return id(servable), signature_name  # a queue holds its servable, so the id stays unique while it lives


def _check_task_size(feeds, options):
    rows = batch_size_of(feeds)
    if rows > options.max_batch_size:
        raise invalid_argument(f"Task size {rows} is larger than maximum input batch size {options.max_batch_size}")


# ------------------------------------------------------------- command line


def parse_bool(text):
    """A gflags boolean: true/false, 1/0, yes/no (any case)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "t", "y"):
        return True
    if value in ("false", "0", "no", "f", "n"):
        return False
    raise ValueError(f"expected true or false. Received: {text!r}")


DEFAULT_GRPC_MAX_THREADS = 16  # this server's pool so far; TF Serving's default is 4 per CPU
# anyio's worker limit, which the REST side had before it ran its own pool. TF Serving's default is 4 per CPU, but
# here a batched `generate` request holds its thread until its rows are done: fewer threads, fewer requests merged.
DEFAULT_REST_API_NUM_THREADS = 40


def add_flags(parser):
    """Adds `--enable_batching`, `--batching_parameters_file`, `--generation_chunk_steps`, `--grpc_max_threads`,
    `--rest_api_num_threads`, `--tensorflow_intra_op_parallelism` and `--tensorflow_inter_op_parallelism`."""
    parser.add_argument(
        "--enable_batching",
        nargs="?",
        const=True,
        default=False,
        type=parse_bool,
        help="merge concurrent requests to one signature into one call, as TF Serving does (default false).",
    )
    parser.add_argument(
        "--batching_parameters_file",
        help="text BatchingParameters for --enable_batching (default: TF Serving's defaults).",
    )
    parser.add_argument(
        "--generation_chunk_steps",
        type=int,
        default=DEFAULT_GENERATION_CHUNK_STEPS,
        help="characters per call for generate signatures, which new requests join between calls "
        f"(default {DEFAULT_GENERATION_CHUNK_STEPS}; 0 = one call per request).",
    )
    parser.add_argument(
        "--grpc_max_threads",
        type=int,
        default=DEFAULT_GRPC_MAX_THREADS,
        help=f"threads answering gRPC calls; only calls in flight can be batched (default {DEFAULT_GRPC_MAX_THREADS}).",
    )
    parser.add_argument(
        "--rest_api_num_threads",
        type=int,
        default=DEFAULT_REST_API_NUM_THREADS,
        help="threads running REST requests; only requests in flight can be batched "
        f"(default {DEFAULT_REST_API_NUM_THREADS}).",
    )
    for flag, what in (("intra", "that one op's work is split over"), ("inter", "that run independent ops")):
        parser.add_argument(
            f"--tensorflow_{flag}_op_parallelism",
            type=int,
            default=0,
            help=f"TensorFlow's threads {what} (default 0: TensorFlow's choice, one per core). On 2 cores, 1 "
            "intra-op thread served char_lstm's streams 1.1x as fast (BENCHMARKS.md, serving under load).",
        )


def apply_tensorflow_threads(args):
    """Sizes TensorFlow's thread pools from `--tensorflow_intra_op_parallelism` and `--tensorflow_inter_op_parallelism`.

    Must run before TensorFlow's first op, which makes the pools: `python -m serving` calls it before any model loads.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)


def server_options(args):
    """`ModelServer` keyword arguments from the parsed flags.

    Raises:
        ValueError: the batching parameters file does not parse or breaks
            TF Serving's rules, or a negative `--generation_chunk_steps` or TensorFlow thread count.
    """
    if args.generation_chunk_steps < 0:
        raise ValueError(
            f"--generation_chunk_steps must be >= 0. Received: --generation_chunk_steps={args.generation_chunk_steps}"
        )
    for flag in ("grpc_max_threads", "rest_api_num_threads"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be >= 1. Received: --{flag}={getattr(args, flag)}")
    for flag in ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism"):
        value = getattr(args, flag)
        if value < 0:
            raise ValueError(f"--{flag} must be >= 0 (0: TensorFlow's choice). Received: --{flag}={value}")
    batching = None
    if args.enable_batching:  # TF Serving reads the parameters file only when batching is on
        path = args.batching_parameters_file
        batching = BatchingOptions.from_file(path) if path else BatchingOptions()
    return {
        "batching": batching,
        "generation_chunk_steps": args.generation_chunk_steps,
        "grpc_max_workers": args.grpc_max_threads,
        "rest_api_num_threads": args.rest_api_num_threads,
    }
