"""Server-side limits on what one request may ask for, checked before any compute.

TF Serving bounds neither request size on REST nor work per request; this
server does, because a laptop or CI server should not be taken down by one
request. Both limits answer INVALID_ARGUMENT (HTTP 400) with a message that
names the limit and the flag that sets it.

- `max_request_size_bytes` (`--max_request_size_bytes`): a REST body larger
  than this is refused before it is read in full (the Content-Length is
  checked first); gRPC gets the same number as its receive limit, over which
  grpcio itself answers RESOURCE_EXHAUSTED.
- `max_generation_steps` (`--max_generation_steps`): any signature with an
  integer input named `steps` (the zoo's `generate`, or any other model that
  follows the convention) gets every value checked to lie in
  [0, max_generation_steps]; a float input named `temperature` must be finite
  and >= 0. The names are the convention, not the zoo: a foreign SavedModel
  with a `steps` input is bounded the same way.
"""

import dataclasses

import numpy as np

from serving.errors import invalid_argument
from zoo._checks import check_generation_arguments, check_non_negative_int

__all__ = ["Limits", "DEFAULT_MAX_REQUEST_SIZE_BYTES", "DEFAULT_MAX_GENERATION_STEPS", "GRPC_MESSAGE_MAX"]

DEFAULT_MAX_REQUEST_SIZE_BYTES = 256 * 2**20  # far above any char-model request, far below a machine's memory
DEFAULT_MAX_GENERATION_STEPS = 4096  # a few seconds of CPU sampling for the shipped model
GRPC_MESSAGE_MAX = 2**31 - 1  # gRPC's own ceiling, and TF Serving's setting

STEPS_INPUT = "steps"
TEMPERATURE_INPUT = "temperature"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-request limits of one server.

    Attributes:
        max_request_size_bytes: largest request body accepted (0 = gRPC's
            2 GiB ceiling, REST unbounded).
        max_generation_steps: largest value of a `steps` input (0 = no bound
            beyond non-negativity).
    """

    max_request_size_bytes: int = DEFAULT_MAX_REQUEST_SIZE_BYTES
    max_generation_steps: int = DEFAULT_MAX_GENERATION_STEPS

    def __post_init__(self):
        for name in ("max_request_size_bytes", "max_generation_steps"):
            check_non_negative_int(name, getattr(self, name))

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

    def check_inputs(self, feeds):
        """Checks the generation inputs of one request (alias -> NumPy array), before it runs.

        Raises:
            ServingError: INVALID_ARGUMENT for a negative `steps`, one above
                `max_generation_steps`, or a NaN, infinite or negative `temperature`.
        """
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
