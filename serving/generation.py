"""Continuous batching for signatures with the `generate` contract (beyond TF Serving).

A `generate` signature (the zoo's `zoo.sampling`, or any SavedModel with the
same inputs and outputs) takes, per row, a prompt, the recurrent state before
it, how many characters to draw, the sampling settings and the stream
position, and returns the text, its token ids and the state to continue from.
The state travels in and out and the sampler is seeded by (seed, position), so
a row can be advanced a chunk of steps at a time: one call with
`steps = n` gives exactly the text of calls with `steps = c, c, ..., rest`
where each call is fed the previous call's state, its last character as the
prompt and the position moved on by c.

The engine runs every `generate` request that way, `chunk_steps` at a time:

- With batching on, all requests to one version's `generate` share a lane: a
  thread that advances every active row by one chunk per call (each row with
  `steps = min(its remaining steps, chunk_steps)`), and lets new rows join
  between chunks, up to `max_batch_size` rows. A short request never waits
  for a long one to finish, and no call carries rows that are done.
- With batching off, a request's rows are advanced in its own thread, chunk by
  chunk.

When a merged call fails (one request's prompt holds a character the model
does not know, say), each request's rows are run again on their own, so only
the request at fault gets the error.

Either way the engine looks at the request's `serving.deadline.Deadline`
before every chunk, so a request whose client gave up stops using CPU within
one chunk, and `stop()` ends every lane and loop within one chunk.

Every call is counted in `serving.metrics.Metrics` (calls, the steps they ran,
the characters they drew for their rows), so an operator can read how full the
lanes run: a step carrying a few rows costs far more than its share of a full one.
"""

import collections
import logging
import threading

import numpy as np

from serving.batching import QUEUE_FULL_MESSAGE, SHUTTING_DOWN_MESSAGE
from serving.errors import Code, ServingError, from_exception

__all__ = [
    "GenerationEngine", "has_contract", "is_generate_contract", "GENERATE_INPUTS", "GENERATE_OUTPUTS", "LANE_IDLE_S",
]

log = logging.getLogger(__name__)

LANE_IDLE_S = 1.0  # how long a lane with no rows waits for new ones before its thread ends

# TensorFlow's DataType enum values, written out so this module loads without TensorFlow.
_DT_FLOAT, _DT_INT32, _DT_STRING, _DT_INT64 = 1, 3, 7, 9
GENERATE_INPUTS = {
    "prompt": _DT_STRING,
    "state": _DT_FLOAT,
    "steps": _DT_INT32,
    "temperature": _DT_FLOAT,
    "top_k": _DT_INT32,
    "seed": _DT_INT64,
    "position": _DT_INT64,
}
GENERATE_OUTPUTS = {"text": _DT_STRING, "token_ids": _DT_INT32, "state": _DT_FLOAT}


def has_contract(signature, inputs, outputs):
    """Whether a `SignatureDef` has exactly these inputs and outputs (alias -> DataType enum)."""

    def dtypes(tensors):
        return {alias: info.dtype for alias, info in tensors.items()}

    return dtypes(signature.inputs) == inputs and dtypes(signature.outputs) == outputs


def is_generate_contract(signature):
    """Whether a `SignatureDef` has exactly `generate`'s inputs and outputs, with their dtypes."""
    return has_contract(signature, GENERATE_INPUTS, GENERATE_OUTPUTS)


def _last_character(text):
    """The last character of UTF-8 `text`, as UTF-8 (the next chunk's prompt)."""
    return text.decode("utf-8")[-1:].encode("utf-8")


class _Request:
    """One `generate` request: its rows, its deadline, then its outputs or error."""

    def __init__(self, feeds, deadline):
        self.deadline = deadline
        batch = len(feeds["prompt"])
        self.rows = [_Row(self, feeds, i) for i in range(batch)]
        self.unfinished = batch
        self.done = threading.Event()
        self.error = None

    def fail(self, error):
        # A request whose rows all finished keeps its outputs; `done` may already be set by a cancellation.
        if self.error is None and self.unfinished:
            self.error = error
            self.done.set()

    def dropped(self):
        """The error that ends this request now (deadline, cancellation, failure), or None."""
        if self.error is None and self.deadline is not None:
            error = self.deadline.error
            if error is not None:
                self.fail(error)
        return self.error

    def row_finished(self):
        self.unfinished -= 1
        if self.unfinished == 0:
            self.done.set()

    def outputs(self):
        """`generate`'s outputs for the whole request, as one call would give them."""
        width = max((row.steps for row in self.rows), default=0)
        token_ids = np.full((len(self.rows), width), -1, np.int32)
        text = np.empty(len(self.rows), dtype=object)
        for i, row in enumerate(self.rows):
            ids = np.concatenate(row.tokens) if row.tokens else np.zeros(0, np.int32)
            token_ids[i, : len(ids)] = ids
            text[i] = b"".join(row.pieces)
        state = np.stack([row.state for row in self.rows]).astype(np.float32)
        return {"text": text, "token_ids": token_ids, "state": state}


class _Row:
    """One row of a request, advanced chunk by chunk."""

    def __init__(self, request, feeds, i):
        self.request = request
        prompt = feeds["prompt"][i]
        self.prompt = prompt if isinstance(prompt, bytes) else str(prompt).encode("utf-8")
        self.state = np.asarray(feeds["state"][i], np.float32)
        self.steps = self.remaining = int(feeds["steps"][i])
        self.temperature = feeds["temperature"][i]
        self.top_k = feeds["top_k"][i]
        self.seed = feeds["seed"][i]
        self.position = int(feeds["position"][i])
        self.pieces, self.tokens = [], []
        self.calls = 0

    @property
    def finished(self):
        return self.calls > 0 and self.remaining == 0

    def take(self, text, token_ids, state, steps):
        """Records one chunk's answer and moves the row on to the next chunk."""
        self.pieces.append(text)
        self.tokens.append(np.asarray(token_ids[:steps], np.int32))
        self.state = np.asarray(state, np.float32)
        self.calls += 1
        if steps:
            self.prompt = _last_character(text)  # not yet in the state: the next chunk feeds it first
            self.position += steps
            self.remaining -= steps


def _advance(run, rows, chunk_steps):
    """One `generate` call moving every row on by up to `chunk_steps` characters; returns each row's steps."""
    steps = np.array([min(row.remaining, chunk_steps) for row in rows], np.int32)
    prompts = np.empty(len(rows), dtype=object)
    prompts[:] = [row.prompt for row in rows]
    outputs = run(
        {
            "prompt": prompts,
            "state": np.stack([row.state for row in rows]),
            "steps": steps,
            "temperature": np.array([row.temperature for row in rows], np.float32),
            "top_k": np.array([row.top_k for row in rows], np.int32),
            "seed": np.array([row.seed for row in rows], np.int64),
            "position": np.array([row.position for row in rows], np.int64),
        }
    )
    text, token_ids, state = (np.asarray(outputs[name]) for name in ("text", "token_ids", "state"))
    for i, row in enumerate(rows):
        row.take(text[i], token_ids[i], state[i], int(steps[i]))
    return steps


class _Lane:
    """The rows of one version's `generate`: those waiting to join and those being advanced."""

    def __init__(self, key, run, model_name):
        self.key, self.run, self.model_name = key, run, model_name
        self.pending = collections.deque()
        self.active = []
        self.thread = None


class GenerationEngine:
    """Runs `generate` requests a chunk of steps at a time, merged or alone.

    Args:
        chunk_steps: characters each row advances per `generate` call.
        max_rows: most rows advanced together (batching's `max_batch_size`);
            None runs each request alone in its caller's thread.
        max_queued_rows: most rows waiting to join a lane before requests are
            refused with UNAVAILABLE (None: `max_rows` * 10).
        metrics: optional `serving.metrics.Metrics` counting every call.
    """

    def __init__(self, chunk_steps, max_rows=None, max_queued_rows=None, metrics=None):
        if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, int) or chunk_steps < 1:
            raise ValueError(f"`chunk_steps` must be a positive integer. Received: chunk_steps={chunk_steps!r}")
        self.chunk_steps = chunk_steps
        self.max_rows = max_rows
        self.max_queued_rows = max_queued_rows if max_queued_rows is not None else (max_rows or 0) * 10
        self.metrics = metrics
        self._lanes = {}
        self._lock = threading.Condition()
        self._stopping = False
        self._alone = 0  # requests advancing in their callers' threads

    def run(self, key, run, feeds, deadline=None, model_name=""):
        """Runs one `generate` request.

        Args:
            key: requests with the same key (servable and signature) share a lane.
            run: `feeds -> outputs` of that signature.
            feeds: the request's checked inputs (alias -> array).
            deadline: optional `serving.deadline.Deadline`, looked at before each chunk.
            model_name: the model its calls are counted under in `metrics`.

        Returns:
            The outputs one call with these feeds gives.

        Raises:
            ServingError: the deadline's error, UNAVAILABLE when the lane's
                queue is full or the engine stops, the run's own errors.
        """
        request = _Request(feeds, deadline)
        if not request.rows:
            return run(feeds)
        if self.max_rows is None:
            return self._run_alone(run, request, model_name)
        self._submit(key, run, request, model_name)
        try:
            if deadline is None:
                request.done.wait()
            else:
                deadline.wait(request.done)
        except ServingError as error:
            request.fail(error)  # the lane drops its rows before the next chunk
            raise
        if request.error is not None:
            raise request.error
        return request.outputs()

    def _run_alone(self, run, request, model_name):
        with self._lock:
            if self._stopping:
                raise ServingError(Code.UNAVAILABLE, SHUTTING_DOWN_MESSAGE)
            self._alone += 1
        try:
            active = request.rows
            while active:
                if self._stopping:
                    raise ServingError(Code.UNAVAILABLE, SHUTTING_DOWN_MESSAGE)
                error = request.dropped()
                if error is not None:
                    raise error
                self._count(model_name, _advance(run, active, self.chunk_steps))
                active = [row for row in active if not row.finished]
            return request.outputs()
        finally:
            with self._lock:
                self._alone -= 1
                self._lock.notify_all()

    def _submit(self, key, run, request, model_name):
        with self._lock:
            if self._stopping:
                raise ServingError(Code.UNAVAILABLE, SHUTTING_DOWN_MESSAGE)
            lane = self._lanes.get(key)
            queued = len(lane.pending) if lane is not None else 0
            if queued + len(request.rows) > self.max_queued_rows:
                raise ServingError(Code.UNAVAILABLE, QUEUE_FULL_MESSAGE)
            if lane is None:
                lane = self._lanes[key] = _Lane(key, run, model_name)
                lane.thread = threading.Thread(target=self._drive, args=(lane,), name="generation-lane", daemon=True)
                lane.thread.start()
            lane.pending.extend(request.rows)
            self._lock.notify_all()  # a lane idling for work

    def _admit(self, lane):
        """Moves waiting rows into the lane, up to `max_rows`; False when the lane is done.

        An empty lane waits `LANE_IDLE_S` for new rows before it ends: starting a lane's thread, and TensorFlow's
        per-thread set-up in it, cost each request of a client calling one at a time about a millisecond.
        """
        with self._lock:
            if not lane.active:
                self._lock.wait_for(lambda: lane.pending or self._stopping, LANE_IDLE_S)
            if self._stopping:
                rows = list(lane.pending) + lane.active
                lane.pending.clear()
                lane.active = []
                for row in rows:
                    row.request.fail(ServingError(Code.UNAVAILABLE, SHUTTING_DOWN_MESSAGE))
            while lane.pending and len(lane.active) < self.max_rows:
                row = lane.pending.popleft()
                if row.request.dropped() is None:
                    lane.active.append(row)
            if not lane.active:
                del self._lanes[lane.key]  # under the lock: a new request starts a new lane
                self._lock.notify_all()
                return False
            return True

    def _drive(self, lane):
        """The lane's thread: one chunk over every active row, until no row is left."""
        while self._admit(lane):
            rows = [row for row in lane.active if row.request.dropped() is None]
            try:
                if rows:
                    self._count(lane.model_name, _advance(lane.run, rows, self.chunk_steps))
            except Exception:
                self._advance_apart(lane, rows)
            for row in rows:
                if row.finished and not row.request.done.is_set():
                    row.request.row_finished()
            lane.active = [row for row in rows if not row.finished and not row.request.done.is_set()]

    def _advance_apart(self, lane, rows):
        """After a merged call failed: each request's rows again on their own, so only the one at fault fails."""
        by_request = {}
        for row in rows:
            by_request.setdefault(id(row.request), []).append(row)
        for group in by_request.values():
            try:
                # rows move on only once their call succeeded
                self._count(lane.model_name, _advance(lane.run, group, self.chunk_steps))
            except Exception as error:
                group[0].request.fail(error if isinstance(error, ServingError) else from_exception(error))

    def _count(self, model_name, steps):
        if self.metrics is not None:
            self.metrics.record_generation_call(model_name, int(steps.max(initial=0)), int(steps.sum()))

    def stop(self, timeout_s=60.0):
        """Refuses new requests and ends every lane and loop within one chunk; waits for them."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()  # idle lanes end now
            lanes = list(self._lanes.values())
            self._lock.wait_for(lambda: self._alone == 0, timeout_s)
        for lane in lanes:
            lane.thread.join(timeout_s)

    @property
    def busy(self):
        """Whether any row is still being advanced or waiting to be (False once `stop` returns); an idle lane's
        thread waiting for new rows is not work."""
        with self._lock:
            rows = (row for lane in self._lanes.values() for row in (*lane.active, *lane.pending))
            return any(not row.request.done.is_set() for row in rows) or self._alone > 0
