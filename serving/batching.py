"""TF Serving's request batching: `--enable_batching` and `--batching_parameters_file`.

Concurrent requests to the same model version and signature are queued,
merged along dimension 0 into one signature call, and the outputs are split
back by each request's rows. The rules are TF Serving's (batching_session.cc,
batching_util.cc, shared_batch_scheduler.h, bundle_factory_util.h):

- One pool of `num_batch_threads` threads serves a queue per (version,
  signature). A request joins the queue's open batch if its rows fit under
  `max_batch_size`, else it opens a new batch; with `max_enqueued_batches`
  batches already waiting it is refused: UNAVAILABLE `The batch scheduling
  queue to which this task was submitted is full`. A request with more rows
  than `max_batch_size` is refused with INVALID_ARGUMENT `Task size <n> is
  larger than maximum input batch size <max>`.
- A batch runs when it is full, when `batch_timeout_micros` have passed since
  it opened, or when a newer batch exists behind it; with the default timeout
  of 0 a batch runs as soon as a thread is free, so requests are merged only
  while the threads are busy, and a lone request never waits.
- A merged batch is padded up to the smallest of `allowed_batch_sizes` that
  holds it, with copies of its last request's first row (the padding rows'
  outputs are dropped). With `pad_variable_length_inputs`, tensors are padded
  on every dimension but the first to the batch's largest, with their own
  first element, and each request gets the padded outputs.
- Every input of a request needs the same dimension 0 (`Batching Run() input
  tensors must have equal 0th-dimension size`), every output of the merged
  call needs a dimension 0 equal to the batch's rows (`Batched output
  tensor's 0th dimension does not equal the sum of the 0th dimension sizes of
  the input tensors`).

Two deliberate differences, both so that no request fails because of
another: without `pad_variable_length_inputs`, TF Serving fails a whole
batch whose requests have different shapes past dimension 0 (`... have
different shapes and padding is turned off`); here each group of equal
shapes runs as its own call. And when a merged call fails (say one request's
prompt holds a character the model does not know), TF Serving gives every
request of the batch that error; here each request is run again alone, so
only the one at fault gets it.

Each row of a zoo signature carries its own seed, steps, temperature and
position, so merging rows changes no row's result; the float arithmetic of a
bigger matrix product may round differently in the last bits.
"""

import collections
import dataclasses
import logging
import os
import threading
import time

import numpy as np

from serving.config_protos import BatchingParameters, parse_text
from serving.errors import Code, ServingError, from_exception, invalid_argument

__all__ = [
    "BatchingOptions",
    "BatchScheduler",
    "QUEUE_FULL_MESSAGE",
    "batch_size_of",
    "merge_inputs",
    "split_outputs",
]

log = logging.getLogger(__name__)

QUEUE_FULL_MESSAGE = "The batch scheduling queue to which this task was submitted is full"
SHUTTING_DOWN_MESSAGE = "The server is shutting down"
_MAX_PAD_RANK = 6  # TF Serving pads tensors of rank 1 to 6, as its Pad op does


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """`BatchingParameters`, with TF Serving's defaults for the fields a file leaves out.

    Attributes:
        max_batch_size: most rows in one merged call (TF Serving's default 1000).
        batch_timeout_micros: longest a batch waits for more requests before
            it runs (default 0: run as soon as a thread is free).
        max_enqueued_batches: batches a queue holds before refusing requests
            (default 10).
        num_batch_threads: threads running batches, shared by every queue
            (default: the number of CPUs).
        allowed_batch_sizes: if set, the sizes a merged call may have,
            increasing, the last equal to `max_batch_size`.
        pad_variable_length_inputs: pad dimensions past the first to the
            batch's largest, so requests of different lengths merge.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            _check_int(name, getattr(self, name), low=1)
        _check_int("batch_timeout_micros", self.batch_timeout_micros, low=0)
        sizes = tuple(self.allowed_batch_sizes)
        object.__setattr__(self, "allowed_batch_sizes", sizes)
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] < 1:
                raise ValueError(
                    "`allowed_batch_sizes` entries must be positive and monotonically increasing. "
                    f"Received: allowed_batch_sizes={list(sizes)}"
                )
            if sizes[-1] != self.max_batch_size:  # TF Serving's own check and wording
                raise ValueError(
                    "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                    f"{sizes[-1]}; expected {self.max_batch_size}"
                )

    @classmethod
    def from_proto(cls, params):
        """From a `BatchingParameters` message: the fields it sets, the defaults for the rest."""
        kwargs = {
            name: getattr(params, name).value
            for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
            if params.HasField(name)
        }
        return cls(
            **kwargs,
            allowed_batch_sizes=tuple(params.allowed_batch_sizes),
            pad_variable_length_inputs=params.pad_variable_length_inputs,
        )

    @classmethod
    def from_text(cls, text):
        """From the text format of `--batching_parameters_file`.

        Raises:
            ValueError: the text does not parse as `BatchingParameters`, or
                the values break TF Serving's rules.
        """
        try:
            params = parse_text(text, BatchingParameters)
        except Exception as error:  # text_format.ParseError names the line and field
            raise ValueError(f"Invalid BatchingParameters: {error}") from None
        return cls.from_proto(params)

    @classmethod
    def from_file(cls, path):
        """From a `--batching_parameters_file` (see `from_text`)."""
        with open(path, encoding="utf-8") as f:
            return cls.from_text(f.read())

    def padded_size(self, rows):
        """The smallest allowed batch size that holds `rows` (`rows` when none are set)."""
        for size in self.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")


# ---------------------------------------------------------------- tensors


def batch_size_of(feeds):
    """The rows of one request: the shared dimension 0 of its inputs.

    Raises:
        ServingError: INVALID_ARGUMENT for no inputs, a scalar input, or
            inputs with different dimension 0, in TF Serving's words.
    """
    if not feeds:
        raise invalid_argument("Batching Run() must have at least one input tensor")
    sizes = set()
    for array in feeds.values():
        if np.ndim(array) == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        sizes.add(np.shape(array)[0])
    if len(sizes) > 1:
        raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()


def _pad_to(array, dims):
    """`array` padded at the end of every dimension but the first to `dims`, with its first element."""
    widths = [(0, 0)] + [(0, target - size) for size, target in zip(array.shape[1:], dims[1:], strict=True)]
    if not any(after for _, after in widths):
        return array
    if array.ndim > _MAX_PAD_RANK:
        raise invalid_argument("Only tensors with rank from 1 to 6 can be padded.")
    if array.size == 0:
        raise invalid_argument("Got empty tensor in batch of non-empty tensors.")
    fill = array.reshape(-1)[0]
    padded = np.full([array.shape[0], *dims[1:]], fill, dtype=array.dtype)
    padded[tuple(slice(0, n) for n in array.shape)] = array
    return padded


def merge_inputs(feeds_list, padded_rows, pad_variable_length_inputs=False):
    """One input dict for several requests, rows in request order, padded to `padded_rows`.

    Args:
        feeds_list: per request, alias -> array (same aliases; same shapes past
            dimension 0 unless `pad_variable_length_inputs`).
        padded_rows: rows of the merged call (>= the requests' total): the
            extra rows repeat the last request's first row.
        pad_variable_length_inputs: pad every dimension past the first to the
            largest among the requests.
    """
    merged = {}
    for alias in feeds_list[0]:
        arrays = [np.asarray(feeds[alias]) for feeds in feeds_list]
        if pad_variable_length_inputs:
            dims = np.max([a.shape for a in arrays], axis=0).tolist()
            arrays = [_pad_to(a, dims) for a in arrays]
        extra = padded_rows - sum(a.shape[0] for a in arrays)
        if extra > 0:
            arrays.append(np.repeat(arrays[-1][:1], extra, axis=0))
        merged[alias] = np.concatenate(arrays, axis=0)
    return merged


def split_outputs(outputs, sizes, padded_rows=None):
    """Per request, alias -> its rows of each merged output (padding rows dropped).

    Args:
        outputs: alias -> output of the merged call.
        sizes: rows of each request, in merge order.
        padded_rows: rows of the merged call, padding included (default: their sum).

    Raises:
        ServingError: FAILED_PRECONDITION for an output without dimension 0 or
            with a dimension 0 other than the merged call's rows.
    """
    total = sum(sizes) if padded_rows is None else padded_rows
    bounds = np.cumsum([0, *sizes])
    per_request = [{} for _ in sizes]
    for alias, array in outputs.items():
        array = np.asarray(array)
        if array.ndim == 0:
            raise ServingError(Code.FAILED_PRECONDITION, "Batched output tensor has 0 dimensions")
        if array.shape[0] != total:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                "Batched output tensor's 0th dimension does not equal the sum of the 0th dimension sizes of the "
                "input tensors",
            )
        for i, result in enumerate(per_request):
            result[alias] = array[bounds[i] : bounds[i + 1]]
    return per_request


# ---------------------------------------------------------------- scheduler


class _Task:
    """One request waiting in a queue: its inputs, then its outputs or error."""

    def __init__(self, feeds, rows, deadline):
        self.feeds, self.rows, self.deadline = feeds, rows, deadline
        self.done = threading.Event()
        self.outputs = self.error = None

    def finish(self, outputs=None, error=None):
        self.outputs, self.error = outputs, error
        self.done.set()


class _Batch:
    def __init__(self):
        self.tasks, self.rows, self.opened = [], 0, time.monotonic()


class _Queue:
    """The batches of one (servable, signature), oldest first; the last one is open."""

    def __init__(self, run):
        self.run = run  # feeds -> outputs, the servable's signature
        self.batches = collections.deque()


class BatchScheduler:
    """TF Serving's shared batch scheduler: one thread pool, one queue per (version, signature).

    Args:
        options: a `BatchingOptions`.
    """

    def __init__(self, options=None):
        self.options = options if options is not None else BatchingOptions()
        self._queues = {}
        self._lock = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-thread-{i}", daemon=True)
            for i in range(self.options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, key, run, feeds, deadline=None):
        """Runs one request's `feeds` through `run` merged with others of the same `key`.

        Args:
            key: what may be merged: requests of the same servable and signature.
            run: `feeds -> outputs` (alias -> array) of that signature.
            feeds: alias -> array, checked by the data plane.
            deadline: optional `serving.deadline.Deadline`; a request dropped
                before its batch runs costs nothing.

        Returns:
            Alias -> this request's rows of every output.

        Raises:
            ServingError: the errors of the module docstring, the run's own.
        """
        rows = batch_size_of(feeds)
        limit = self.options.max_batch_size
        if rows > limit:
            raise invalid_argument(f"Task size {rows} is larger than maximum input batch size {limit}")
        task = _Task(feeds, rows, deadline)
        self._enqueue(key, run, task)
        try:
            if deadline is None:
                task.done.wait()
            else:
                deadline.wait(task.done)
        except ServingError:
            task.deadline = _Dropped()  # the batch thread skips it if it has not run yet
            raise
        if task.error is not None:
            raise task.error
        return task.outputs

    def _enqueue(self, key, run, task):
        with self._lock:
            if self._stopping:
                raise ServingError(Code.UNAVAILABLE, SHUTTING_DOWN_MESSAGE)
            queue = self._queues.setdefault(key, _Queue(run))
            batches = queue.batches
            if not batches or batches[-1].rows + task.rows > self.options.max_batch_size:
                if len(batches) >= self.options.max_enqueued_batches:
                    raise ServingError(Code.UNAVAILABLE, QUEUE_FULL_MESSAGE)
                batches.append(_Batch())
            batches[-1].tasks.append(task)
            batches[-1].rows += task.rows
            self._lock.notify()

    def _ready(self, now):
        """(queue, batch) to run next, oldest first, or (None, seconds until one may be)."""
        timeout_s = self.options.batch_timeout_micros / 1e6
        best, wait = None, None
        for queue in self._queues.values():
            if not queue.batches:
                continue
            batch = queue.batches[0]
            closed = (
                len(queue.batches) > 1
                or batch.rows >= self.options.max_batch_size
                or now - batch.opened >= timeout_s
            )
            if closed and (best is None or batch.opened < best[1].opened):
                best = (queue, batch)
            elif not closed:
                left = batch.opened + timeout_s - now
                wait = left if wait is None else min(wait, left)
        return best, wait

    def _work(self):
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    best, wait = self._ready(time.monotonic())
                    if best is not None:
                        break
                    self._lock.wait(wait)
                queue, batch = best
                queue.batches.popleft()
            self._process(queue.run, batch.tasks)

    def _process(self, run, tasks):
        live = []
        for task in tasks:
            error = task.deadline.error if task.deadline is not None else None
            if error is not None:
                task.finish(error=error)
            else:
                live.append(task)
        for group in _shape_groups(live, self.options.pad_variable_length_inputs):
            self._run_group(run, group)

    def _run_group(self, run, tasks):
        sizes = [task.rows for task in tasks]
        try:
            padded_rows = self.options.padded_size(sum(sizes))
            feeds = merge_inputs([t.feeds for t in tasks], padded_rows, self.options.pad_variable_length_inputs)
            results = split_outputs(run(feeds), sizes, padded_rows)
        except Exception as error:
            if len(tasks) > 1:  # run each request alone, so only the one at fault gets the error
                for task in tasks:
                    self._run_group(run, [task])
                return
            tasks[0].finish(error=error if isinstance(error, ServingError) else from_exception(error))
            return
        for task, outputs in zip(tasks, results, strict=True):
            task.finish(outputs=outputs)

    def stop(self):
        """Refuses new requests, fails the queued ones with UNAVAILABLE, and joins the threads."""
        with self._lock:
            self._stopping = True
            queued = [t for q in self._queues.values() for b in q.batches for t in b.tasks]
            self._queues.clear()
            self._lock.notify_all()
        for task in queued:
            task.finish(error=ServingError(Code.UNAVAILABLE, SHUTTING_DOWN_MESSAGE))
        for thread in self._threads:
            thread.join()

    @property
    def threads(self):
        """The batch threads (for tests: none is alive after `stop`)."""
        return list(self._threads)


class _Dropped:
    """Stands in for the deadline of a request whose caller already gave up."""

    error = ServingError(Code.CANCELLED, "The request was abandoned before its batch ran")


def _shape_groups(tasks, padded):
    """The tasks split into runs that can be merged: all of them when padding, else by shapes past dim 0."""
    if padded or len(tasks) < 2:
        return [tasks] if tasks else []
    groups = {}
    for task in tasks:
        signature = tuple((alias, np.shape(array)[1:]) for alias, array in sorted(task.feeds.items()))
        groups.setdefault(signature, []).append(task)
    return list(groups.values())
