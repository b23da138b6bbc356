"""Bidirectional wrapper for zoo recurrent layers, exact on right-padded batches."""

import keras
from keras import ops

from zoo._checks import check_one_of
from zoo.layers._loop import RecurrentLayer

__all__ = ["Bidirectional"]

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _reversal_indices(mask):
    """Per-row time indices that reverse each sequence within its length.

    The length L of a row is one past its last real step, so right padding
    stays in place: idx[b, t] = L_b − 1 − t for t < L_b, else t. The map is
    its own inverse, so the same gather un-reverses the outputs.

    Args:
        mask: (B, T) boolean tensor.

    Returns:
        (B, T) int32 tensor of indices into the time axis.
    """
    positions = ops.arange(ops.shape(mask)[1], dtype="int32")[None, :]  # (1, T)
    lengths = ops.max(ops.where(mask, positions + 1, 0), axis=1, keepdims=True)  # (B, 1)
    return ops.where(positions < lengths, lengths - 1 - positions, positions)


def _reverse_time(tensor, indices):
    """Gathers `tensor` (B, T, ...) along time with (B, T) `indices`; flips the axis if None."""
    if indices is None:
        return ops.flip(tensor, axis=1)
    if len(tensor.shape) == 3:
        indices = indices[:, :, None]
    return ops.take_along_axis(tensor, indices, axis=1)


def _copy(layer, prefix):
    """A fresh layer from `layer`'s config, named `prefix` + its name (once)."""
    config = keras.saving.serialize_keras_object(layer)
    name = layer.name[len(prefix) :] if layer.name.startswith(prefix) else layer.name
    config["config"]["name"] = prefix + name
    return keras.saving.deserialize_keras_object(config)


@keras.saving.register_keras_serializable(package="zoo")
class Bidirectional(keras.layers.Layer):
    """Runs a zoo recurrent layer forward and backward in time and merges the two.

        y(t) = merge(→h(t), ←h(t)),   →h reads x(0..t), ←h reads x(t..L−1)

    The backward direction starts at each sequence's last real step: with a
    mask, every row is reversed within its own length L (one past its last
    unmasked step), run forward in time under the reversed mask, and its
    outputs are put back in the original order. So a right-padded batch gives
    exactly what running each sequence unpadded gives, for the outputs at the
    real steps and for both final states (outputs at padded steps repeat a
    real one and are left to the mask, which this layer passes on). Without a
    mask the whole time axis is reversed.

    Both directions are fresh layers built from `layer`'s config (named
    `forward_<name>` and `backward_<name>`): the weights of `layer` itself are
    not used, as in `keras.layers.Bidirectional`.

    Args:
        layer: a zoo `RecurrentLayer` with `go_backwards=False`.
        merge_mode: "concat" (widths add), "sum", "mul", "ave", or None to
            return the two directions' outputs as a list.
        backward_layer: optional `RecurrentLayer` for the backward direction
            (any zoo family, e.g. another cell), with `go_backwards=False`
            (this wrapper does the reversing) and the same `return_sequences`
            and `return_state` as `layer`. Defaults to a copy of `layer`.
        **kwargs: `keras.layers.Layer` arguments; `dtype` defaults to `layer`'s.

    Call arguments:
        sequences: (B, T, I) tensor.
        initial_state: optional list: the forward layer's states, then the
            backward layer's.
        mask: optional (B, T) boolean tensor.
        training: passed to both directions.

    Returns:
        The merged output, (B, T, H') with `return_sequences` else (B, H')
        (H' = 2H for "concat", H otherwise), or `[forward, backward]` for
        `merge_mode=None`; with `return_state` followed by the forward
        layer's final states and then the backward layer's.

    Raises:
        TypeError: if `layer` or `backward_layer` is not a zoo `RecurrentLayer`.
        ValueError: for an unknown `merge_mode`, a layer with
            `go_backwards=True`, directions that disagree on
            `return_sequences`/`return_state`, or, for "sum"/"mul"/"ave",
            on `units`.
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        check_one_of("merge_mode", merge_mode, MERGE_MODES)
        for name, value in (("layer", layer), ("backward_layer", backward_layer)):
            if name == "backward_layer" and value is None:
                continue
            if not isinstance(value, RecurrentLayer):
                raise TypeError(
                    f"`{name}` must be a zoo RecurrentLayer (e.g. zoo.layers.GRU); for other layers use "
                    f"keras.layers.Bidirectional. Received: {name}={value!r}"
                )
            if value.go_backwards:
                raise ValueError(
                    f"`{name}` must have go_backwards=False: Bidirectional reverses each sequence "
                    f"within its length itself. Received: {name}.go_backwards=True"
                )
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(**kwargs)
        self.forward_layer = _copy(layer, "forward_")
        self.backward_layer = _copy(layer, "backward_") if backward_layer is None else backward_layer
        self._check_directions_agree(merge_mode)
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True

    def _check_directions_agree(self, merge_mode):
        names = ["return_sequences", "return_state"]
        if merge_mode in ("sum", "mul", "ave"):  # element-wise merges need equal widths
            names.append("units")
        for name in names:
            forward, backward = getattr(self.forward_layer, name), getattr(self.backward_layer, name)
            if forward != backward:
                raise ValueError(
                    f"`layer` and `backward_layer` must agree on `{name}` (merge_mode={merge_mode!r}). "
                    f"Received: layer.{name}={forward!r}, backward_layer.{name}={backward!r}"
                )

    def build(self, sequences_shape, initial_state_shape=None):
        # A direction deserialized from a config with its build config is built already.
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build(sequences_shape)

    def _split_initial_state(self, initial_state):
        if initial_state is None:
            return None, None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        n_forward = len(self.forward_layer.cell.state_size)
        n_backward = len(self.backward_layer.cell.state_size)
        if len(states) != n_forward + n_backward:
            raise ValueError(
                f"Bidirectional expects {n_forward} forward then {n_backward} backward initial state "
                f"tensor(s). Received: {len(states)} tensor(s)."
            )
        return states[:n_forward], states[n_forward:]

    def call(self, sequences, initial_state=None, mask=None, training=None):
        forward_state, backward_state = self._split_initial_state(initial_state)
        forward = self.forward_layer(sequences, initial_state=forward_state, mask=mask, training=training)

        mask = None if mask is None else ops.cast(mask, "bool")
        indices = None if mask is None else _reversal_indices(mask)
        backward = self.backward_layer(
            _reverse_time(sequences, indices),  # (B, T, I), each row reversed within its length
            initial_state=backward_state,
            mask=None if mask is None else _reverse_time(mask, indices),
            training=training,
        )

        forward_states, backward_states = [], []
        if self.return_state:
            forward, *forward_states = forward
            backward, *backward_states = backward
        if self.return_sequences:
            backward = _reverse_time(backward, indices)  # back to the original time order
        output = self._merge(forward, backward)
        if not self.return_state:
            return output
        return [*(output if self.merge_mode is None else [output]), *forward_states, *backward_states]

    def _merge(self, forward, backward):
        if self.merge_mode == "concat":
            return ops.concatenate([forward, backward], axis=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        if self.merge_mode == "ave":
            return (forward + backward) / 2
        return [forward, backward]

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        forward = self.forward_layer.compute_output_shape(sequences_shape)
        backward = self.backward_layer.compute_output_shape(sequences_shape)
        states = []
        if self.return_state:
            forward, *forward_states = forward
            backward, *backward_states = backward
            states = [*forward_states, *backward_states]
        if self.merge_mode is None:
            outputs = [forward, backward]
        elif self.merge_mode == "concat":
            outputs = [(*forward[:-1], forward[-1] + backward[-1])]
        else:
            outputs = [forward]
        if not self.return_state and len(outputs) == 1:
            return outputs[0]
        return [*outputs, *states]

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        masks = [output_mask] if self.merge_mode is not None else [output_mask, output_mask]
        if not self.return_state:
            return masks[0] if len(masks) == 1 else masks
        n_states = len(self.forward_layer.cell.state_size) + len(self.backward_layer.cell.state_size)
        return masks + [None] * n_states

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.forward_layer),
            "merge_mode": self.merge_mode,
            "backward_layer": keras.saving.serialize_keras_object(self.backward_layer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"], custom_objects=custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = keras.saving.deserialize_keras_object(
                config["backward_layer"], custom_objects=custom_objects
            )
        return cls(**config)
