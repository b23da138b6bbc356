"""`python -m serving`: the embedded model server with TF Serving's flags.

    python -m serving --model_name=char_lstm --model_base_path=saved_models/char_lstm
    python -m serving --model_config_file=models.config --port=8500 --rest_api_port=8501

Flags mirror `tensorflow_model_server` (`--flag=value` or `--flag value`);
other TF Serving flags are accepted and ignored with a warning, so a Docker
command line carries over. One difference: a port of 0 picks a free port
(TF Serving reads `--rest_api_port=0` as "no REST"). The limit flags are
this server's own: `--max_request_size_bytes`, `--max_input_elements`,
`--max_generation_steps`, `--max_prompt_characters` and
`--max_generation_work` (see `serving.limits`), and so is
`--generation_chunk_steps` (continuous batching of `generate`, see
`serving.execution`); `--enable_batching`, `--batching_parameters_file`,
`--tensorflow_intra_op_parallelism` and `--tensorflow_inter_op_parallelism`
are TF Serving's. `--model_browser` adds a page at `/browser/` on the REST
port listing the models with their cards and streaming text from them
(`serving.model_browser`).

SIGTERM and SIGINT stop the server: the ports stop accepting, requests in
flight finish (up to `--shutdown_grace_seconds`, then they are cancelled), and
the process exits 0. A graph already running cannot be interrupted from
Python, and one may still run after the drain (a REST request abandoned at its
deadline, a gRPC call cancelled at the end of the grace period). Leaving the
normal way would then either wait for it (concurrent.futures joins its worker
threads at exit: minutes) or finalize the interpreter, and TensorFlow's global
objects, under it (SIGSEGV). So once drained the process ends with
`os._exit(0)`, after flushing its logs: nothing else is left to finalize.
"""

import argparse
import logging
import os
import signal
import sys
import threading

from serving import execution
from serving.limits import (
    DEFAULT_MAX_GENERATION_STEPS,
    DEFAULT_MAX_GENERATION_WORK,
    DEFAULT_MAX_INPUT_ELEMENTS,
    DEFAULT_MAX_PROMPT_CHARACTERS,
    DEFAULT_MAX_REQUEST_SIZE_BYTES,
)

# TF Serving's defaults (model_servers/main.cc); serving.repository holds the same, but importing it loads TensorFlow.
DEFAULT_MAX_NUM_LOAD_RETRIES = 5
DEFAULT_LOAD_RETRY_INTERVAL_MICROS = 60 * 1000 * 1000

__all__ = ["main", "build_parser"]


def build_parser():
    """The argument parser for TF Serving's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m serving", description="Serve SavedModels over TF Serving's REST and gRPC APIs."
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500; 0 = a free port).")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="REST port (default 8501; 0 = a free port).")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 = all).")
    parser.add_argument("--model_name", default="default", help="name of the model served from --model_base_path.")
    parser.add_argument("--model_base_path", help="folder of the model's integer-named versions.")
    parser.add_argument("--model_config_file", help="text ModelServerConfig listing several models.")
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1,
        help="seconds between scans for new versions (default 1; 0 = no polling).",
    )
    parser.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0,
        help="seconds between re-reads of --model_config_file (default 0 = read once).",
    )
    parser.add_argument(
        "--rest_api_timeout_in_ms", type=int, default=30000, help="REST deadline per request (default 30000)."
    )
    parser.add_argument(
        "--max_request_size_bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_SIZE_BYTES,
        help="largest request body (REST 400 / gRPC RESOURCE_EXHAUSTED past it; default 256 MiB; 0 = no limit).",
    )
    parser.add_argument(
        "--max_generation_steps",
        type=int,
        default=DEFAULT_MAX_GENERATION_STEPS,
        help="largest 'steps' input of any signature that has one, e.g. generate (default 4096; 0 = no limit).",
    )
    parser.add_argument(
        "--max_generation_work",
        type=int,
        default=DEFAULT_MAX_GENERATION_WORK,
        help="largest rows x (longest 'prompt' + largest 'steps') of one request (default 262144; 0 = no limit).",
    )
    parser.add_argument(
        "--max_prompt_characters",
        type=int,
        default=DEFAULT_MAX_PROMPT_CHARACTERS,
        help="longest string of a 'prompt' input, in characters (default 8192; 0 = no limit).",
    )
    parser.add_argument(
        "--max_input_elements",
        type=int,
        default=DEFAULT_MAX_INPUT_ELEMENTS,
        help="most elements of all input tensors of one request together (default 4194304; 0 = no limit).",
    )
    parser.add_argument(
        "--max_num_load_retries",
        type=int,
        default=DEFAULT_MAX_NUM_LOAD_RETRIES,
        help="times a failed load of a version is retried (default 5, as TF Serving).",
    )
    parser.add_argument(
        "--load_retry_interval_micros",
        type=int,
        default=DEFAULT_LOAD_RETRY_INTERVAL_MICROS,
        help="microseconds between load retries (default 60000000 = 1 minute, as TF Serving).",
    )
    parser.add_argument(
        "--shutdown_grace_seconds",
        type=float,
        default=10,
        help="on SIGTERM, how long requests in flight may take to finish (default 10).",
    )
    parser.add_argument(
        "--model_browser",
        action="store_true",
        help="also serve the model browser (cards, figures, live sampling) at /browser/ on the REST port.",
    )
    parser.add_argument(
        "--freeze_heap",
        nargs="?",
        const=True,
        default=True,
        type=execution.parse_bool,
        help="keep the loaded models out of the garbage collector's full passes, which otherwise stall every "
        "request (default true; see serving.heap).",
    )
    execution.add_flags(parser)
    return parser


def main(argv=None):
    """Runs the server until SIGTERM or SIGINT. Returns the exit status."""
    parser = build_parser()
    args, ignored = parser.parse_known_args(argv)
    if (args.model_base_path is None) == (args.model_config_file is None):
        parser.error("give exactly one of --model_base_path or --model_config_file")
    try:
        execution_options = execution.server_options(args)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ignored:
        logging.warning("Ignoring flags this server does not implement: %s", " ".join(ignored))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before the models load: a signal then stops cleanly too
        signal.signal(signum, lambda *_: stop.set())

    from serving.server import ModelServer  # TensorFlow loads here, after the flags are checked

    execution.apply_tensorflow_threads(args)
    server = ModelServer(
        model_name=args.model_name if args.model_base_path else None,
        model_base_path=args.model_base_path,
        model_config_file=args.model_config_file,
        port=args.port,
        rest_api_port=args.rest_api_port,
        host=args.host,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        max_request_size_bytes=args.max_request_size_bytes,
        max_generation_steps=args.max_generation_steps,
        max_generation_work=args.max_generation_work,
        max_prompt_characters=args.max_prompt_characters,
        max_input_elements=args.max_input_elements,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_micros=args.load_retry_interval_micros,
        model_browser=args.model_browser,
        freeze_heap=args.freeze_heap,  # this process is the server's alone
        **execution_options,
    )
    server.start()
    print(f"Serving gRPC on {server.grpc_target} and REST on {server.rest_target}", flush=True)
    if server.browser_url:
        print(f"Model browser: {server.browser_url}", flush=True)
    while not stop.wait(1.0):
        pass
    logging.info("Stopping: letting requests in flight finish")
    server.stop(grace=args.shutdown_grace_seconds)
    logging.info("Stopped")
    return 0


def _exit(status):
    """Ends the process at once, logs flushed, without finalizing under a running graph (module docstring)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit(main())
