"""Recurrent layers of the zoo: exact cells on one shared time loop."""

from zoo.layers._loop import RecurrentLayer, run_time_loop
from zoo.layers.bidirectional import Bidirectional
from zoo.layers.elman import Elman, ElmanCell
from zoo.layers.gru import GRU, GRUCell
from zoo.layers.peephole_lstm import PeepholeLSTM, PeepholeLSTMCell

# Name -> layer class, for architectures that let the user pick the cell.
RECURRENT_LAYERS = {
    "elman": Elman,
    "gru": GRU,
    "peephole_lstm": PeepholeLSTM,
}


def recurrent_layer(kind, units, **kwargs):
    """Builds the zoo recurrent layer registered as `kind`."""
    if kind not in RECURRENT_LAYERS:
        raise ValueError(f"Unknown recurrent layer {kind!r}. Expected one of {sorted(RECURRENT_LAYERS)}.")
    return RECURRENT_LAYERS[kind](units, **kwargs)


__all__ = [
    "RECURRENT_LAYERS",
    "RecurrentLayer",
    "run_time_loop",
    "recurrent_layer",
    "Bidirectional",
    "Elman",
    "ElmanCell",
    "GRU",
    "GRUCell",
    "PeepholeLSTM",
    "PeepholeLSTMCell",
]

# After `recurrent_layer`: the encoder–decoder builds its layers through it.
from zoo.layers.encoder_decoder import RecurrentDecoder, RecurrentEncoder  # noqa: E402

__all__ += ["RecurrentDecoder", "RecurrentEncoder"]

from zoo.layers.esn import EchoState, EchoStateCell  # noqa: E402
from zoo.layers.ridge import RidgeReadout  # noqa: E402

__all__ += ["EchoState", "EchoStateCell", "RidgeReadout"]

from zoo.layers.unitary import ExpRNN, ExpRNNCell  # noqa: E402

RECURRENT_LAYERS["exprnn"] = ExpRNN
__all__ += ["ExpRNN", "ExpRNNCell"]
