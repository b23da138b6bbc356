"""Streaming text from a served `generate` signature, chunk by chunk.

TF Serving has no streaming RPC, so a stream is a sequence of ordinary unary
`generate` calls. The recurrent state travels in the requests (the server keeps
none), the model version is pinned at the start so a hot swap cannot mix two
models in one text, and the token position tells the stateless sampler which
random draw comes next: the concatenated chunks equal one long in-process call
with the same seed, whatever the chunk size. Works unchanged against real TF
Serving: it only uses `status` and `predict`.
"""

import numpy as np

__all__ = ["stream_text", "pin_version", "state_width"]


def pin_version(client, model):
    """The newest AVAILABLE version of `model`, so every chunk hits the same one."""
    available = [s["version"] for s in client.status(model) if s["state"] == "AVAILABLE"]
    if not available:
        raise RuntimeError(f"Model {model!r} has no AVAILABLE version to stream from.")
    return max(available)


def state_width(client, model, version):
    """Width S of the `state` input of the `generate` signature, from metadata."""
    signature = client.metadata(model, version=version)["generate"]
    return int(signature["inputs"]["state"]["shape"][-1])


def _as_text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def stream_text(client, model, prompt, max_tokens, temperature=1.0, top_k=0, seed=0, chunk_size=32):
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
            larger ones cost fewer round trips.
    """
    if max_tokens < 0 or chunk_size <= 0:
        raise ValueError(f"max_tokens must be >= 0 and chunk_size > 0. Received: {max_tokens=}, {chunk_size=}")
    version = pin_version(client, model)
    state = np.zeros((1, state_width(client, model, version)), np.float32)
    done = 0
    while done < max_tokens:
        steps = min(chunk_size, max_tokens - done)
        outputs = client.predict(
            model,
            {
                "prompt": np.array([prompt], dtype=object),
                "state": state,
                "steps": np.array([steps], np.int32),
                "temperature": np.array([temperature], np.float32),
                "top_k": np.array([top_k], np.int32),
                "seed": np.array([seed], np.int64),
                "position": np.array([done], np.int64),
            },
            signature_name="generate",
            version=version,
        )
        text = _as_text(np.asarray(outputs["text"]).reshape(-1)[0])
        state = np.asarray(outputs["state"], np.float32).reshape(1, -1)
        prompt, done = text[-1:], done + steps  # the last character is fed first by the next call
        yield text
