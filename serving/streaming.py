"""Streaming text from a served `generate` signature, chunk by chunk.

TF Serving has no streaming RPC, so a stream is a sequence of ordinary unary
`generate` calls. The recurrent state travels in the requests (the server keeps
none), the model version is pinned at the start so a hot swap cannot mix two
models in one text, and the token position tells the stateless sampler which
random draw comes next: the concatenated chunks equal one long in-process call
with the same seed, whatever the chunk size. Works unchanged against real TF
Serving: it only uses `metadata` and `predict` (one metadata call, unpinned,
names the version the server serves now and the state's width).

Pieces grow by default: the first call asks for `FIRST_CHUNK` characters and
each later one for twice as many, up to `MAX_CHUNK`, so the first piece comes
as soon as a short call can bring it and a long stream needs few round trips
(500 characters: 6 calls instead of 16 fixed pieces of 32, each carrying the
whole recurrent state both ways). A call that would leave fewer than
`FIRST_CHUNK` characters for one more takes them too (500 = 16 + 32 + 64 + 128
+ 128 + 132): a round trip costs the server and client several milliseconds of
CPU, far more than a few more steps. A fixed `chunk_size` keeps every piece
that size.

Over REST a stream calls `generate_bytes` where the version serves it (the
zoo's exports since char_lstm 15, char_gru 12 and char_elman 11): the same
numbers, with the state as base64 bytes instead of 2,048 JSON numbers each
way (`serving.state_bytes`); over gRPC, whose tensors are binary already,
`generate`.

Because everything a stream needs to continue is on the client, a stream is
resumable: `TextStream.checkpoint` after any piece, handed to `resume`, gives
exactly the text the uninterrupted stream would have given. The client's own
retries (`Client(retries=...)`) use the same property to ride out a dropped
connection or a restarting server in the middle of a stream.
"""

import dataclasses

import numpy as np

from serving.errors import Code, ServingError
from serving.state_bytes import STATE_BYTES, pack, unpack
from zoo._checks import check_non_negative_int, check_positive_int

__all__ = [
    "StreamCheckpoint", "TextStream", "stream_text", "pin_version", "state_width", "chunk_sizes", "FIRST_CHUNK",
    "MAX_CHUNK",
]

BYTES_SIGNATURE = "generate_bytes"
FIRST_CHUNK = 16  # characters of a growing stream's first call
MAX_CHUNK = 128  # ... and the most any later call asks for (the last also takes a tail under FIRST_CHUNK)


def pin_version(client, model):
    """The version the server answers unpinned calls to `model` with now (its newest available one)."""
    return client.pin(model)[0]


def state_width(client, model, version):
    """Width S of the `state` input of the `generate` signature, from metadata."""
    return _state_width(client.metadata(model, version=version), model, version)


def _signature_for(client, signatures):
    """`generate_bytes` on REST where the version serves it with the state as bytes, else `generate`."""
    inputs = signatures.get(BYTES_SIGNATURE, {}).get("inputs", {})
    return BYTES_SIGNATURE if getattr(client, "protocol", None) == "rest" and STATE_BYTES in inputs else "generate"


def _state_width(signatures, model, version):
    if "generate" not in signatures:
        raise ValueError(
            f"Model {model!r} version {version} has no `generate` signature to stream from. "
            f"Its signatures: {sorted(signatures)}."
        )
    return int(signatures["generate"]["inputs"]["state"]["shape"][-1])


@dataclasses.dataclass(frozen=True)
class StreamCheckpoint:
    """Where a stream stands: enough to continue it on any client, even after a restart.

    Attributes:
        model, version: the served model and the version pinned for the stream.
        prompt: what the next call feeds first (the last generated character).
        state: the recurrent state before `prompt`, a list of S floats.
        position: characters generated so far.
        max_tokens, temperature, top_k, seed: the stream's settings.
        chunk_size: characters the next call asks for.
        max_chunk_size: the most a call asks for; each call doubles the last
            up to it. None: every call asks for `chunk_size` (fixed pieces).
    """

    model: str
    version: int
    prompt: str
    state: tuple
    position: int
    max_tokens: int
    temperature: float
    top_k: int
    seed: int
    chunk_size: int
    max_chunk_size: int | None = None

    def next_steps(self):
        """Characters the next call asks for: a growing stream's last call takes a short tail along."""
        left = self.max_tokens - self.position
        steps = min(self.chunk_size, left)
        if self.max_chunk_size is not None and left - steps < FIRST_CHUNK:
            steps = left
        return steps

    def after(self, prompt, state, steps):
        """The checkpoint once a call of `steps` characters left `state` and ended on `prompt`."""
        grown = self.chunk_size if self.max_chunk_size is None else min(2 * self.chunk_size, self.max_chunk_size)
        return dataclasses.replace(
            self, prompt=prompt, state=state, position=self.position + steps, chunk_size=max(grown, self.chunk_size)
        )

    def to_dict(self):
        """A JSON-ready dict (`StreamCheckpoint(**d)` rebuilds it)."""
        return {**dataclasses.asdict(self), "state": list(self.state)}


def _check_settings(max_tokens, chunk_size, max_chunk_size=None):
    check_non_negative_int("max_tokens", max_tokens)
    check_positive_int("chunk_size", chunk_size)
    if max_chunk_size is not None:
        check_positive_int("max_chunk_size", max_chunk_size)


def _schedule(chunk_size):
    """(first call's size, largest size) of a stream asked for `chunk_size` (None: growing)."""
    return (FIRST_CHUNK, MAX_CHUNK) if chunk_size is None else (chunk_size, None)


def _as_text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def chunk_sizes(max_tokens, chunk_size=None):
    """The characters each call of a stream of `max_tokens` asks for (what a benchmark's reference replays)."""
    first, largest = _schedule(chunk_size)
    _check_settings(max_tokens, first)
    checkpoint, sizes = StreamCheckpoint("", 0, "", (), 0, max_tokens, 1.0, 0, 0, first, largest), []
    while checkpoint.position < max_tokens:
        sizes.append(checkpoint.next_steps())
        checkpoint = checkpoint.after("", (), sizes[-1])
    return sizes


class TextStream:
    """An iterator of generated text pieces, one per `generate` call.

    Build it with `Client.stream(...)` or `TextStream.resume(client, checkpoint)`.
    After each piece, `checkpoint` says how to continue from there.
    """

    def __init__(self, client, checkpoint, signature_name=None):
        self._client = client
        self._checkpoint = checkpoint
        self._signature_name = signature_name  # None: read from the pinned version's metadata at the first call

    @classmethod
    def start(cls, client, model, prompt, max_tokens, temperature=1.0, top_k=0, seed=0, chunk_size=None):
        """Pins the version the server serves now and reads the state width (one metadata call); nothing is
        generated yet."""
        first, largest = _schedule(chunk_size)
        _check_settings(max_tokens, first)
        version, signatures = client.pin(model)
        zeros = (0.0,) * _state_width(signatures, model, version)
        checkpoint = StreamCheckpoint(
            model, version, prompt, zeros, 0, max_tokens, float(temperature), int(top_k), int(seed), first, largest
        )
        return cls(client, checkpoint, _signature_for(client, signatures))

    @classmethod
    def resume(cls, client, checkpoint):
        """Continues a stream from a `StreamCheckpoint` (or its `to_dict()` form)."""
        if isinstance(checkpoint, dict):
            checkpoint = StreamCheckpoint(**checkpoint)
        _check_settings(checkpoint.max_tokens, checkpoint.chunk_size, checkpoint.max_chunk_size)
        return cls(client, checkpoint)

    @property
    def checkpoint(self):
        """A `StreamCheckpoint` of the stream after the last piece it yielded."""
        return self._checkpoint

    def __iter__(self):
        return self

    def __next__(self):
        done = self._checkpoint
        if done.position >= done.max_tokens:
            raise StopIteration
        steps = done.next_steps()
        try:
            outputs = self._generate(done, steps)
        except ServingError as error:
            if error.code != Code.NOT_FOUND:
                raise
            raise ServingError(
                error.code,
                f"{error.message} (the stream is pinned to version {done.version}, which the server no longer "
                "serves; to let streams finish across a version swap, keep the previous version loaded, e.g. "
                "model_version_policy { latest { num_versions: 2 } })",
            ) from error
        text = _as_text(np.asarray(outputs["text"]).reshape(-1)[0])
        if STATE_BYTES in outputs:
            state = unpack(outputs[STATE_BYTES], len(done.state))
            if state is None:
                raise ServingError(Code.INTERNAL, f"`{STATE_BYTES}` must hold {4 * len(done.state)} bytes per row, "
                                   f"the model's {len(done.state)} finite float32; the server answered other bytes")
        else:
            state = outputs["state"]
        state = np.asarray(state, np.float32).reshape(-1)
        # The last character is not yet in the state: the next call feeds it first.
        self._checkpoint = done.after(text[-1:], tuple(state.tolist()), steps)
        return text

    def _generate(self, done, steps):
        if self._signature_name is None:
            self._signature_name = _signature_for(self._client, self._client.metadata(done.model, done.version))
        state = np.asarray(done.state, np.float32).reshape(1, -1)
        return self._client.predict(
            done.model,
            {
                "prompt": np.array([done.prompt], dtype=object),
                **({STATE_BYTES: pack(state)} if self._signature_name == BYTES_SIGNATURE else {"state": state}),
                "steps": np.array([steps], np.int32),
                "temperature": np.array([done.temperature], np.float32),
                "top_k": np.array([done.top_k], np.int32),
                "seed": np.array([done.seed], np.int64),
                "position": np.array([done.position], np.int64),
            },
            signature_name=self._signature_name,
            version=done.version,
        )


def stream_text(client, model, prompt, max_tokens, temperature=1.0, top_k=0, seed=0, chunk_size=None):
    """Yields pieces of generated text as each `generate` call returns.

    Args:
        client: a `serving.client.Client` (REST or gRPC).
        model: served model name.
        prompt: text to condition on (an empty prompt starts a new line).
        max_tokens: characters to generate in all.
        temperature: 0 = argmax; higher = more varied.
        top_k: sample among the k likeliest characters (0 = all).
        seed: same seed, same text.
        chunk_size: characters per request: smaller pieces arrive sooner,
            larger ones cost fewer round trips. None (default): growing pieces,
            `FIRST_CHUNK` characters first, then twice the last up to `MAX_CHUNK`.

    Returns:
        A `TextStream` (iterate it for the pieces; `.checkpoint` to resume).
    """
    return TextStream.start(client, model, prompt, max_tokens, temperature, top_k, seed, chunk_size)
