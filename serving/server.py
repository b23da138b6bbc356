"""`ModelServer`: the embedded TF Serving-compatible server, in-process.

It serves gRPC (grpcio, a thread pool) and REST (uvicorn in a background
thread, without signal handlers, so it can live inside tests, notebooks and
the demo) from one `ModelRepository`. Port 0 picks a free port; the bound
ports are exposed after `start()`. Models are loaded before the ports open,
as TF Serving does, and a background poller rescans the base paths every
`file_system_poll_wait_seconds` (0 = never; call `repository.poll()`).

    with ModelServer("tiny", "/models/tiny") as server:
        client = Client(server.rest_target)
"""

import concurrent.futures
import functools
import logging
import socket
import threading
import time

import grpc
import uvicorn

from serving import heap
from serving.dataplane import DataPlane
from serving.execution import DEFAULT_GENERATION_CHUNK_STEPS, DEFAULT_REST_API_NUM_THREADS, Executor
from serving.grpc_service import GRPC_OPTIONS, add_services
from serving.limits import (
    DEFAULT_MAX_GENERATION_STEPS,
    DEFAULT_MAX_GENERATION_WORK,
    DEFAULT_MAX_INPUT_ELEMENTS,
    DEFAULT_MAX_PROMPT_CHARACTERS,
    DEFAULT_MAX_REQUEST_SIZE_BYTES,
    Limits,
)
from serving.metrics import Metrics
from serving.model_browser import PAGE_PATH, ModelBrowser
from serving.repository import (
    DEFAULT_LOAD_RETRY_INTERVAL_MICROS,
    DEFAULT_MAX_NUM_LOAD_RETRIES,
    ModelConfig,
    ModelRepository,
    parse_model_config,
    read_model_config_file,
)
from serving.rest import create_app

__all__ = ["ModelServer"]

log = logging.getLogger(__name__)


def _grpc_address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _models_from(model_name, model_base_path, model_config_file, model_config):
    sources = [model_base_path is not None, model_config_file is not None, model_config is not None]
    if sum(sources) != 1:
        raise ValueError(
            "Give exactly one of model_base_path, model_config_file or model_config. Received: "
            f"model_base_path={model_base_path!r}, model_config_file={model_config_file!r}, "
            f"model_config={'set' if model_config is not None else None}"
        )
    if model_base_path is not None:
        return [ModelConfig(model_name or "default", str(model_base_path))]
    if model_config_file is not None:
        return read_model_config_file(model_config_file)
    if isinstance(model_config, (list, tuple)):
        return list(model_config)
    return parse_model_config(model_config)


class ModelServer:
    """TF Serving's REST and gRPC APIs over SavedModels on disk.

    Args:
        model_name: name of the single model (TF Serving's `--model_name`,
            default "default"); used with `model_base_path`.
        model_base_path: folder of integer-named versions of that model.
        model_config_file: a text `ModelServerConfig` (`--model_config_file`),
            instead of `model_base_path`.
        model_config: instead of either: a `ModelServerConfig` proto, its text,
            or a list of `serving.repository.ModelConfig`.
        port: gRPC port (0 = a free port).
        rest_api_port: REST port (0 = a free port; None = no REST server).
        host: interface to bind; loopback unless told otherwise.
        file_system_poll_wait_seconds: seconds between rescans of the base
            paths; 0 turns the poller off.
        rest_api_timeout_in_ms: REST deadline per request (504 past it); 0 = none.
        rest_api_num_threads: threads running REST requests.
        model_config_file_poll_wait_seconds: seconds between re-reads of
            `model_config_file` (models added, removed or relabelled take
            effect); 0 = read it once, as TF Serving's default.
        grpc_max_workers: threads answering gRPC calls.
        max_request_size_bytes: largest request accepted (REST: 400 naming
            the limit; gRPC: grpcio's RESOURCE_EXHAUSTED); 0 = no limit.
        max_generation_steps: largest `steps` value of any signature with a
            `steps` input (400 / INVALID_ARGUMENT before it runs); 0 = no limit.
        max_generation_work, max_prompt_characters, max_input_elements: the
            other per-request limits (400 naming the limit); 0 = no limit.
            See `serving.limits`.
        max_num_load_retries, load_retry_interval_micros: how often and how
            long apart a failed load is retried (TF Serving's flags and
            defaults: 5, one minute). Retries run on the poller.
        batching: a `serving.batching.BatchingOptions` turns TF Serving's
            request batching on (`--enable_batching`); None = off.
        generation_chunk_steps: characters per call for `generate`
            signatures, which other requests join between calls (0 = one
            call per request). See `serving.execution`.
        model_browser: also serve the model browser at /browser/ on the
            REST port (`serving.model_browser`); off by default, so the
            REST port answers exactly as TF Serving's.
        freeze_heap: keep the loaded models out of the garbage collector's
            full passes while serving (`serving.heap`); `python -m serving`
            turns it on. Off by default: it changes the collector of the
            whole process, which an embedding process may not want.

    Attributes (after `start()`):
        grpc_port, rest_port: bound ports.
        grpc_target: "host:port" for `grpc.insecure_channel` / `Client(..., protocol="grpc")`.
        rest_target: "http://host:port" for `Client(...)` / `requests`.
        browser_url: the model browser's address, or None when it is off.
        repository, dataplane, metrics: the serving internals, for tests.
    """

    def __init__(
        self,
        model_name=None,
        model_base_path=None,
        model_config_file=None,
        *,
        model_config=None,
        port=0,
        rest_api_port=0,
        host="127.0.0.1",
        file_system_poll_wait_seconds=1.0,
        rest_api_timeout_in_ms=30000,
        rest_api_num_threads=DEFAULT_REST_API_NUM_THREADS,
        model_config_file_poll_wait_seconds=0,
        grpc_max_workers=16,
        max_request_size_bytes=DEFAULT_MAX_REQUEST_SIZE_BYTES,
        max_generation_steps=DEFAULT_MAX_GENERATION_STEPS,
        max_generation_work=DEFAULT_MAX_GENERATION_WORK,
        max_prompt_characters=DEFAULT_MAX_PROMPT_CHARACTERS,
        max_input_elements=DEFAULT_MAX_INPUT_ELEMENTS,
        max_num_load_retries=DEFAULT_MAX_NUM_LOAD_RETRIES,
        load_retry_interval_micros=DEFAULT_LOAD_RETRY_INTERVAL_MICROS,
        batching=None,
        generation_chunk_steps=DEFAULT_GENERATION_CHUNK_STEPS,
        model_browser=False,
        freeze_heap=False,
    ):
        self._models = _models_from(model_name, model_base_path, model_config_file, model_config)
        self.limits = Limits(
            max_request_size_bytes, max_generation_steps, max_generation_work, max_prompt_characters, max_input_elements
        )
        self._load_retries = {
            "max_num_load_retries": max_num_load_retries,
            "load_retry_interval_micros": load_retry_interval_micros,
        }
        self.model_config_file = model_config_file
        self.config_poll_wait_seconds = float(model_config_file_poll_wait_seconds) if model_config_file else 0.0
        self.host = host
        self._ports = (port, rest_api_port)
        self.poll_wait_seconds = float(file_system_poll_wait_seconds)
        self.rest_api_timeout_in_ms = rest_api_timeout_in_ms
        self._rest_api_num_threads = rest_api_num_threads
        self._grpc_max_workers = grpc_max_workers
        self.repository = self.dataplane = None
        self.metrics = Metrics()
        self.grpc_port = self.rest_port = None
        self._grpc = self._uvicorn = self._rest_thread = self._rest_app = None
        self._threads = []  # the pollers
        self._stopping = threading.Event()
        self._execution = (batching, generation_chunk_steps)
        self.executor = None
        self.model_browser = bool(model_browser)
        self.freeze_heap = bool(freeze_heap)

    # --------------------------------------------------------------- lifecycle

    def start(self):
        """Loads the models, then opens the ports. Returns self.

        Raises:
            ServingError: FAILED_PRECONDITION when a version label names a
                version that did not load.
            OSError: a port cannot be bound.
        """
        if self.repository is not None:
            return self
        self.repository = ModelRepository(self._models, **self._load_retries)
        self.repository.poll()
        self.repository.check_labels()
        if self.freeze_heap:
            heap.settle()
        self.executor = Executor(*self._execution, metrics=self.metrics)
        self.dataplane = DataPlane(self.repository, self.limits, self.executor)
        try:
            self._start_grpc(self._ports[0])
            if self._ports[1] is not None:
                self._start_rest(self._ports[1])
        except BaseException:
            self.stop(grace=0)
            raise
        for wait, poll, name in [
            (self.poll_wait_seconds, self._poll_models, "model-poller"),
            (self.config_poll_wait_seconds, self._reload_config_file, "config-poller"),
        ]:
            if wait > 0:
                thread = threading.Thread(target=self._every, args=(wait, poll), name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        log.info("Serving gRPC on %s, REST on %s", self.grpc_target, self.rest_target)
        return self

    def _start_grpc(self, port):
        executor = concurrent.futures.ThreadPoolExecutor(self._grpc_max_workers, thread_name_prefix="grpc")
        options = dict(GRPC_OPTIONS) | {"grpc.max_receive_message_length": self.limits.grpc_receive_bytes}
        self._grpc = grpc.server(executor, options=list(options.items()))
        add_services(self._grpc, self.dataplane, self.metrics)
        self.grpc_port = self._grpc.add_insecure_port(_grpc_address(self.host, port))
        if not self.grpc_port:
            raise OSError(f"Could not bind the gRPC port {_grpc_address(self.host, port)}")
        self._grpc.start()

    def _start_rest(self, port):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets whose
        # proto says TCP, and with Nagle on every keep-alive answer waits ~40 ms
        # for a delayed ACK between its header and body writes.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        self.rest_port = sock.getsockname()[1]
        browser = ModelBrowser(self.repository) if self.model_browser else None
        self._rest_app = app = create_app(
            self.dataplane, self.metrics, self.rest_api_timeout_in_ms, browser, self._rest_api_num_threads
        )
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=5)
        self._uvicorn = uvicorn.Server(config)
        self._rest_thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="rest-server", daemon=True
        )
        self._rest_thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if not self._rest_thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"The REST server did not start on {self.host}:{self.rest_port}")
            time.sleep(0.01)

    def _every(self, seconds, function):
        while not self._stopping.wait(seconds):
            try:
                function()
            except Exception:  # a bad scan or config must not kill the poller
                log.exception("%s failed", function.__name__)

    def _settling(self, change):
        """Runs `change` (a rescan, a config reload); settles the heap again if it loaded or unloaded a version."""
        before = self.repository.loaded()
        change()
        if self.freeze_heap and self.repository.loaded() != before:
            heap.settle()

    def _poll_models(self):
        self._settling(self.repository.poll)

    def _reload_config_file(self):
        models = read_model_config_file(self.model_config_file)
        if not models:  # most likely caught mid-write (truncated, not yet filled): keep serving
            log.warning("Model config file %s lists no models; keeping the current ones", self.model_config_file)
            return
        if models != self._models:
            log.info("Model config file %s changed: reloading", self.model_config_file)
            self._models = models
            self._settling(functools.partial(self.repository.reload_config, models))

    def stop(self, grace=5.0):
        """Stops accepting requests, lets those in flight finish (up to `grace` s), then closes."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        if self._uvicorn is not None:
            self._uvicorn.config.timeout_graceful_shutdown = grace
            self._uvicorn.should_exit = True
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        if self._rest_thread is not None:
            self._rest_thread.join(grace + 5)
            self._rest_app.close()
        if self.executor is not None:  # after the drain: only abandoned work is left, each stops within a chunk
            self.executor.stop()
        self._grpc = self._uvicorn = self._rest_thread = self._rest_app = None
        self._threads = []
        if self.freeze_heap:
            heap.thaw()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # ---------------------------------------------------------------- targets

    @property
    def grpc_target(self):
        """`host:port` of the gRPC server."""
        return _grpc_address(self.host, self.grpc_port) if self.grpc_port else None

    @property
    def rest_target(self):
        """`http://host:port` of the REST server."""
        if not self.rest_port:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.rest_port}"

    @property
    def browser_url(self):
        """`http://host:port/browser/`, the model browser's page, when it is served."""
        if not (self.model_browser and self.rest_port):
            return None
        return self.rest_target + PAGE_PATH
