"""Server-side limits on what one request may ask for, checked before any compute.

TF Serving bounds neither request size on REST nor work per request; this
server does, because a laptop or CI server should not be taken down by one
request. Every limit answers INVALID_ARGUMENT (HTTP 400) with a message that
names the limit and the flag that sets it, before the signature runs; 0
turns a limit off.

- `max_request_size_bytes` (`--max_request_size_bytes`): a REST body larger
  than this is refused before it is read in full (the Content-Length is
  checked first); gRPC gets the same number as its receive limit, over which
  grpcio itself answers RESOURCE_EXHAUSTED.
- `max_input_elements` (`--max_input_elements`): the elements of all the
  request's input tensors together (a string is one element). gRPC checks
  the shapes the TensorProtos declare, before building the arrays.
- `max_generation_steps` (`--max_generation_steps`): any signature with an
  integer input named `steps` (the zoo's `generate`, or any other model that
  follows the convention) gets every value checked to lie in
  [0, max_generation_steps]; a float input named `temperature` must be finite
  and >= 0. The names are the convention, not the zoo: a foreign SavedModel
  with a `steps` input is bounded the same way.
- `max_prompt_characters` (`--max_prompt_characters`): the longest string of
  a string input named `prompt`, in characters. A recurrent model reads a
  prompt one character at a time (about 1.3 ms each for the shipped
  `char_lstm` on one CPU core), and the text, its ids and embeddings grow
  with it.
- `max_generation_work` (`--max_generation_work`): rows x (longest prompt +
  largest `steps`), the model steps a `generate`-like call runs: the graph
  runs every row for the longest prompt and the largest `steps` of its batch.
"""

import dataclasses

import numpy as np

from serving.errors import invalid_argument
from zoo._checks import check_generation_arguments, check_non_negative_int

__all__ = [
    "Limits",
    "DEFAULT_MAX_REQUEST_SIZE_BYTES",
    "DEFAULT_MAX_GENERATION_STEPS",
    "DEFAULT_MAX_GENERATION_WORK",
    "DEFAULT_MAX_PROMPT_CHARACTERS",
    "DEFAULT_MAX_INPUT_ELEMENTS",
    "GRPC_MESSAGE_MAX",
]

DEFAULT_MAX_REQUEST_SIZE_BYTES = 256 * 2**20  # far above any char-model request, far below a machine's memory
DEFAULT_MAX_GENERATION_STEPS = 4096  # a few seconds of CPU sampling for the shipped model
# 64 rows x 4,096 steps: ~20 s of one request at batch 64 on the 2-core machine (8,600-15,000 chars/s at batch 32),
# under the REST deadline; 10,000 rows x 4,096 steps ran for minutes.
DEFAULT_MAX_GENERATION_WORK = 64 * 4096
DEFAULT_MAX_PROMPT_CHARACTERS = 8192  # ~10 s to read at ~1.3 ms per character; a 50 MB prompt took 4 GB
DEFAULT_MAX_INPUT_ELEMENTS = 2**22  # a 16 MB float32 tensor; ~60 times the state of 64 char_lstm rows
GRPC_MESSAGE_MAX = 2**31 - 1  # gRPC's own ceiling, and TF Serving's setting

STEPS_INPUT = "steps"
TEMPERATURE_INPUT = "temperature"
PROMPT_INPUT = "prompt"


def _prompt_characters(prompt):
    """Characters of the longest string in `prompt` (UTF-8 bytes or str), decoding only strings that may be over."""
    longest = 0
    for value in np.asarray(prompt, dtype=object).reshape(-1):
        size = len(value)
        if size > longest and isinstance(value, bytes):
            size = len(value.decode("utf-8", "replace"))  # bytes >= characters: decode only what might be longer
        longest = max(longest, size)
    return longest


def _rows(feeds):
    return max((np.shape(value)[0] for value in feeds.values() if np.ndim(value) > 0), default=1)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-request limits of one server (0 turns a limit off).

    Attributes:
        max_request_size_bytes: largest request body accepted (0 = gRPC's
            2 GiB ceiling, REST unbounded).
        max_generation_steps: largest value of a `steps` input (0 = no bound
            beyond non-negativity).
        max_generation_work: largest rows x (longest `prompt` + largest `steps`).
        max_prompt_characters: longest string of a `prompt` input, in characters.
        max_input_elements: most elements of all input tensors together.
    """

    max_request_size_bytes: int = DEFAULT_MAX_REQUEST_SIZE_BYTES
    max_generation_steps: int = DEFAULT_MAX_GENERATION_STEPS
    max_generation_work: int = DEFAULT_MAX_GENERATION_WORK
    max_prompt_characters: int = DEFAULT_MAX_PROMPT_CHARACTERS
    max_input_elements: int = DEFAULT_MAX_INPUT_ELEMENTS

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_non_negative_int(field.name, getattr(self, field.name))

    @property
    def grpc_receive_bytes(self):
        """The gRPC receive limit that enforces `max_request_size_bytes`."""
        if not self.max_request_size_bytes:
            return GRPC_MESSAGE_MAX
        return min(self.max_request_size_bytes, GRPC_MESSAGE_MAX)

    def check_body_size(self, size):
        """Raises INVALID_ARGUMENT when a REST body of `size` bytes is over the limit."""
        if self.max_request_size_bytes and size > self.max_request_size_bytes:
            raise invalid_argument(
                f"Request body of {size} bytes exceeds the server's limit of {self.max_request_size_bytes} "
                f"bytes (--max_request_size_bytes)."
            )

    def check_elements(self, count):
        """Raises INVALID_ARGUMENT when a request's inputs hold more than `max_input_elements` elements."""
        if self.max_input_elements and count > self.max_input_elements:
            raise invalid_argument(
                f"The request's inputs hold {count} elements, over the server's limit of {self.max_input_elements} "
                "elements per request (--max_input_elements)."
            )

    def check_inputs(self, feeds):
        """Checks the inputs of one request (alias -> NumPy array) before it runs.

        Raises:
            ServingError: INVALID_ARGUMENT for inputs over `max_input_elements`,
                a negative `steps` or one above `max_generation_steps`, a NaN,
                infinite or negative `temperature`, a `prompt` over
                `max_prompt_characters`, or a request over `max_generation_work`.
        """
        self.check_elements(sum(np.size(value) for value in feeds.values()))
        self._check_generation_arguments(feeds)
        steps = np.asarray(feeds.get(STEPS_INPUT, 0))
        steps = int(np.max(steps)) if steps.size and steps.dtype.kind in "iu" else 0
        prompt = np.asarray(feeds.get(PROMPT_INPUT, 0))
        prompt = _prompt_characters(prompt) if prompt.dtype.kind in "OSU" else 0
        if self.max_prompt_characters and prompt > self.max_prompt_characters:
            raise invalid_argument(
                f"`prompt` holds a prompt of {prompt} characters, over the server's limit of "
                f"{self.max_prompt_characters} characters per prompt (--max_prompt_characters)."
            )
        rows = _rows(feeds)
        if self.max_generation_work and rows * (prompt + steps) > self.max_generation_work:
            raise invalid_argument(
                f"The request asks for {rows} rows x ({prompt} prompt characters + {steps} steps) = "
                f"{rows * (prompt + steps)} model steps, over the server's limit of {self.max_generation_work} "
                "(--max_generation_work)."
            )

    def _check_generation_arguments(self, feeds):
        # The names and dtypes are the convention; a foreign model's float `steps` is its own business.
        generation = {
            name: np.asarray(feeds[name])
            for name, kinds in ((STEPS_INPUT, "iu"), (TEMPERATURE_INPUT, "f"))
            if name in feeds and np.asarray(feeds[name]).dtype.kind in kinds
        }
        high = self.max_generation_steps
        limits = {STEPS_INPUT: (high, "the server's --max_generation_steps")} if high else None
        try:
            check_generation_arguments(limits, **generation)
        except ValueError as error:
            raise invalid_argument(str(error)) from None
