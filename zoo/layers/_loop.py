"""The one time loop every zoo recurrent layer runs on.

A cell supplies two pieces of math: `project_inputs`, the input matmul applied
to many time steps at once, outside the loop, and `call(projected_t, states)`,
one step of the recurrence. `RecurrentLayer` owns everything else: the loop,
masks, initial and final states, `return_sequences`/`return_state`,
`go_backwards`, and serialization of the flat config.
"""

import contextlib
import functools
import os

import keras
from keras import ops

__all__ = [
    "COLUMN_BLOCKS", "RecurrentLayer", "STEP_BLOCK_ELEMENTS", "STORED_COLUMN_BLOCKS", "StoredColumnBlocks",
    "column_blocks", "run_time_loop", "runs_on_one_thread", "weights_read_once",
]

# On TensorFlow the sequence is projected and run in this many consecutive chunks.
# The recurrence is a chain of small dependent ops that leaves CPU cores idle; the
# projection of chunk k+1 (and, in the gradient, the kernel gradient of chunk k+1)
# does not depend on it, so TensorFlow's executor runs it on those idle cores while
# chunk k recurs. With one chunk the whole projection would run before the loop.
# Measured against one chunk by `python -m benchmarks.chunks` (2 cores,
# benchmarks/results/chunks.json): median over 12 shapes of time(1) / time(4)
# 1.05 in CPU time and 1.11 in wall time for a training step, 1.04 and 1.07
# for inference (LSTM 128×128 training 1.16 and 1.67).
TF_CHUNKS = 4


def _chunk_bounds(steps):
    """(begin, end) of each of the `TF_CHUNKS` consecutive chunks of `steps` time steps."""
    bounds = [steps * i // TF_CHUNKS for i in range(TF_CHUNKS + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _tf_chunk_loop(step, xs, ms, begin, prev_output, states, outputs):
    """Runs the steps of one chunk: its inputs `xs` at the chunk's counter i,
    the whole sequence's mask `ms` and `outputs` at `begin` + i.

    Without a mask the previous output is not a loop variable: it only serves
    to repeat it at masked steps, and each loop variable adds ops to every
    step of the loop and of its gradient.
    """
    import tensorflow as tf

    def body(i, states, outputs):
        output, new_states = step(xs.read(i), states)
        return i + 1, list(new_states), outputs.write(begin + i, output)

    def masked_body(i, prev_output, states, outputs):
        output, new_states = step(xs.read(i), states)
        keep = ms.read(begin + i)[:, None]  # (B, 1): masked steps keep the previous output and state
        output = tf.where(keep, output, prev_output)
        new_states = [tf.where(keep, new, old) for new, old in zip(new_states, states)]
        return i + 1, output, new_states, outputs.write(begin + i, output)

    n = xs.size()
    options = {"maximum_iterations": n, "parallel_iterations": 32, "swap_memory": True}
    if ms is None:
        _, states, outputs = tf.while_loop(lambda i, *_: i < n, body, (0, list(states), outputs), **options)
        return prev_output, states, outputs
    loop_vars = (0, prev_output, list(states), outputs)
    _, prev_output, states, outputs = tf.while_loop(lambda i, *_: i < n, masked_body, loop_vars, **options)
    return prev_output, states, outputs


def _tf_time_loop(step, project, inputs_tm, mask_tm, states, first_output):
    """Time loop on the TensorFlow backend: `tf.while_loop` + TensorArray, per chunk.

    `keras.ops.scan` on TensorFlow requires the per-step output to have the
    carry's structure, which would store every state at every step; this loop
    stores only the outputs and exports to a SavedModel that stock TF Serving
    runs (no Python control flow, no XLA). See `TF_CHUNKS` for the chunks.
    """
    import tensorflow as tf

    steps = tf.shape(inputs_tm)[0]
    outputs = tf.TensorArray(first_output.dtype, size=steps)
    ms = None if mask_tm is None else tf.TensorArray(tf.bool, size=steps).unstack(mask_tm)
    last_output = first_output
    for begin, end in _chunk_bounds(steps):
        projected = project(inputs_tm[begin:end])  # (end − begin, B, K): one matmul for the chunk
        xs = tf.TensorArray(projected.dtype, size=end - begin).unstack(projected)
        last_output, states, outputs = _tf_chunk_loop(step, xs, ms, begin, last_output, states, outputs)
    outputs = outputs.stack()
    if ms is None:  # the last output was not carried; there is none after zero steps
        last_output = tf.cond(steps > 0, lambda: outputs[-1], lambda: first_output)
    return outputs, last_output, states


def _tf_fused_time_loop(cell, project, inputs_tm, mask_tm, states, first_output):
    """Time loop on TensorFlow for a cell with its own derivatives (no mask): see `zoo.layers._fused`.

    Per chunk (see `TF_CHUNKS`), one projection before its loop and, in the
    gradient, one matmul each for the input and recurrent kernels after it:
    the gradient loop runs only the step's own math.
    """
    import tensorflow as tf

    from zoo.layers._fused import fused_time_loop

    chunks = []
    for begin, end in _chunk_bounds(tf.shape(inputs_tm)[0]):
        chunk, states = fused_time_loop(cell, project(inputs_tm[begin:end]), states)
        chunks.append(chunk)
    outputs = tf.concat(chunks, axis=0)
    last_output = tf.cond(tf.shape(outputs)[0] > 0, lambda: outputs[-1], lambda: first_output)
    return outputs, last_output, states


def _choose_loop(step, mask_tm):
    if keras.backend.backend() != "tensorflow":
        return _scan_time_loop
    from zoo.layers._fused import gradient_may_be_taken, supports_fused

    fused = mask_tm is None and supports_fused(step) and gradient_may_be_taken()
    return _tf_fused_time_loop if fused else _tf_time_loop


def _scan_time_loop(step, project, inputs_tm, mask_tm, states, first_output):
    """Time loop on the other backends through `keras.ops.scan` (JAX: lax.scan),
    where the compiler schedules one projection of all steps as well as chunks."""

    def body(carry, xs):
        prev_output, states = carry
        x_t, keep_t = xs if mask_tm is not None else (xs, None)
        output, new_states = step(x_t, states)
        if keep_t is not None:
            keep = ops.expand_dims(keep_t, -1)
            output = ops.where(keep, output, prev_output)
            new_states = [ops.where(keep, new, old) for new, old in zip(new_states, states)]
        return (output, list(new_states)), output

    projected = project(inputs_tm)
    xs = projected if mask_tm is None else (projected, mask_tm)
    (last_output, final_states), outputs = ops.scan(body, (first_output, list(states)), xs)
    return outputs, last_output, final_states


def _identity(inputs):
    return inputs


def run_time_loop(step, inputs, states, output_size, mask=None, go_backwards=False, time_major=False, project=None):
    """Runs `step` over the time axis of `inputs`.

    Args:
        step: `step(x_t, states) -> (output_t, new_states)`, `x_t` of shape (B, K).
        inputs: (B, T, ·) tensor, (T, B, ·) with `time_major`: already
            projected (B, T, K), or the raw inputs when `project` is given.
        states: list of (B, S_i) tensors.
        output_size: width of `output_t`.
        mask: optional (B, T) boolean tensor; masked steps leave state and
            output unchanged, as in Keras's built-in recurrent layers.
        go_backwards: process the time axis in reverse (outputs stay reversed,
            as in Keras).
        time_major: `inputs` and the returned outputs are (T, B, ...), which
            saves two transposes for a caller that works time-major.
        project: optional `project(x) -> projected`, applied to time-major
            (T', B, I) slices of `inputs` outside the loop, a few large
            matmuls (see `TF_CHUNKS`). Projecting after the transpose moves
            the I-wide inputs rather than the wider projection.

    Returns:
        `(outputs (B, T, H) or (T, B, H), last_output (B, H), final_states)`.
    """
    inputs_tm = inputs if time_major else ops.transpose(inputs, (1, 0, 2))
    mask_tm = None if mask is None else ops.transpose(ops.cast(mask, "bool"), (1, 0))
    if go_backwards:
        inputs_tm = ops.flip(inputs_tm, 0)
        mask_tm = None if mask_tm is None else ops.flip(mask_tm, 0)
    first_output = ops.zeros((ops.shape(inputs_tm)[1], output_size), dtype=states[0].dtype)
    loop = _choose_loop(step, mask_tm)
    outputs_tm, last_output, final_states = loop(step, project or _identity, inputs_tm, mask_tm, states, first_output)
    outputs = outputs_tm if time_major else ops.transpose(outputs_tm, (1, 0, 2))
    return outputs, last_output, list(final_states)


def weights_read_once(layer):
    """On TensorFlow, a scope in which the weights of `layer` (a cell, a layer, a model) are tensors read once,
    up front.

    A variable used inside a `tf.while_loop` is read at every step and, for
    the gradient, its value is pushed onto a stack at every step; a tensor read
    before the loop is captured once. Gradients still reach the variables
    through the read. Elsewhere (JAX, PyTorch) reads cost nothing extra.
    """
    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    return keras.StatelessScope(state_mapping=[(w, tf.convert_to_tensor(w)) for w in layer.weights])


# Elements per block of a cell's kernel in `column_blocks`: 1 MiB of float32, half a core's L2 on the reference
# machine (char_lstm's 512 × 2048 recurrent kernel: four blocks of 512 columns; its 64 × 2048 input kernel: one).
STEP_BLOCK_ELEMENTS = 2**18
VECTOR_COLUMNS = 16  # blocks are a multiple of this many columns wide (see `column_blocks`)
COLUMN_BLOCKS = "column_blocks"  # the blocks' op name, by which `zoo.export --stale` knows samplers without them
STORED_COLUMN_BLOCKS = "stored_column_blocks"  # the name scope of their reads in an export (`StoredColumnBlocks`)


def runs_on_one_thread():
    """Whether TensorFlow runs this process's ops on one thread: one intra-op thread (that one op's work is split
    over) and one inter-op thread (that run independent ops side by side), as configured or, by default, on a
    process that may run on one core only. There `column_blocks` only costs: its blocks are independent ops
    for the inter-op threads to run side by side."""
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0))
    threading = tf.config.threading
    return (threading.get_intra_op_parallelism_threads() or cores) == 1 == (
        threading.get_inter_op_parallelism_threads() or cores)


def _block_widths(rows, columns):
    """Column widths of the blocks of a (rows, columns) kernel: about `STEP_BLOCK_ELEMENTS` each, a multiple of
    `VECTOR_COLUMNS` wide but the last; one block when the whole kernel fits."""
    width = max(VECTOR_COLUMNS, STEP_BLOCK_ELEMENTS // max(rows, 1) // VECTOR_COLUMNS * VECTOR_COLUMNS)
    return [min(width, columns - start) for start in range(0, columns, width)]


def _cell_kernels(layer):
    """The 2-D input and recurrent kernels of every gated cell in `layer`: those `column_blocks` cuts."""
    from zoo.layers import _cell

    for cell in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(cell, _cell.GatedCell):
            kernels = [getattr(cell, name, None) for name in ("kernel", "recurrent_kernel")]
            yield from (kernel for kernel in kernels if kernel is not None and len(kernel.shape) == 2)


@contextlib.contextmanager
def column_blocks(layer):
    """`weights_read_once`, with every cell kernel in `layer` also split into blocks of its columns (about
    `STEP_BLOCK_ELEMENTS` each), which the cells' products (`zoo.layers._cell.matmul`) then take one at a time.

    For samplers, whose steps at small batches are chains of (B, K)·(K, N)
    products that each read a whole kernel. TensorFlow runs one such product on
    one core: its own split of a (1, 512)·(512, 2048) product over two intra-op
    threads was slower than one thread on the reference machine. Blocks are
    independent ops, which the executor runs on every core at once, each small
    enough to stay in a core's cache. Every output column is still one block's
    dot product: with blocks a multiple of the vector width wide, the numbers do
    not change (tested; a block of odd width can take another path through the
    CPU's matmul kernel and round differently). The blocks are cut once,
    outside any loop the scope's body builds; a kernel whose blocks an
    enclosing scope already holds (`StoredColumnBlocks.reading`, in an export)
    is not cut again.
    """
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    from zoo.layers import _cell

    with weights_read_once(layer):  # in it a kernel converts to its one read, which the blocks are cut from
        taken = _cell.blocks_taken()
        by_kernel = {
            id(kernel): tf.split(tf.convert_to_tensor(kernel), _block_widths(*kernel.shape), axis=1, name=COLUMN_BLOCKS)
            for kernel in _cell_kernels(layer) if id(kernel) not in taken}
        with _cell.taking_blocks(by_kernel):
            yield


class StoredColumnBlocks:
    """For an export: each cell kernel of `layer` that `column_blocks` cuts into more than one block, held as
    variables of its blocks instead, made from the kernel's present value.

    `column_blocks` cuts at every call of a traced function: a copy of every
    such kernel (12 MiB for char_lstm, about a millisecond), which a server's
    short streaming calls pay again and again. An exported graph reads the
    stored blocks instead; the kernels themselves are then not stored
    (`replaced`): inside `reading()`, the cells' products take the blocks and
    any other use of such a kernel sees its blocks joined. The numbers are those
    of `column_blocks`, which are those of whole kernels.

    On one thread the blocks cost instead: each is one more op a step waits on
    (`benchmarks.column_blocks`). So an export also traces every signature as
    a whole-kernel form (`whole_kernel_form`), which takes the kernels as its
    first argument: a server on one thread joins the stored blocks once at load
    and passes them to every call (`zoo.export._whole_kernels`). Its numbers
    are the signature's, bit for bit.

    Attributes:
        variables: the blocks' `tf.Variable`s, for the exported module to track.
        replaced: ids of the kernels the blocks stand for.
        kernel_blocks: the blocks of each replaced kernel, in the order a
            whole-kernel form takes the kernels.
    """

    def __init__(self, layer):
        self._blocks = {}  # id(kernel) -> (kernel, [block variables])
        if keras.backend.backend() != "tensorflow":
            return
        import tensorflow as tf

        for kernel in _cell_kernels(layer):
            widths = _block_widths(*kernel.shape)
            if len(widths) > 1:
                blocks = tf.split(tf.convert_to_tensor(kernel.value), widths, axis=1)
                self._blocks[id(kernel)] = (kernel, [
                    tf.Variable(block, trainable=False, name=f"{kernel.path}/{STORED_COLUMN_BLOCKS}_{i}")
                    for i, block in enumerate(blocks)])

    @property
    def variables(self):
        return [variable for _, blocks in self._blocks.values() for variable in blocks]

    @property
    def replaced(self):
        return self._blocks.keys()

    @property
    def kernel_blocks(self):
        return [blocks for _, blocks in self._blocks.values()]

    def kernel_specs(self):
        """The `tf.TensorSpec`s of the whole kernels a whole-kernel form takes, in the order of `kernel_blocks`."""
        import tensorflow as tf

        return [tf.TensorSpec(kernel.shape, kernel.dtype) for kernel, _ in self._blocks.values()]

    def whole_kernel_form(self, function):
        """`function(**inputs)` as `form(kernels, inputs)`: the replaced kernels given whole, as tensors in the
        order of `kernel_specs`, in place of their stored blocks; the inputs as one dict of their names."""
        from zoo.layers import _cell

        def form(kernels, inputs):
            pairs = [(kernel, whole) for (kernel, _), whole in zip(self._blocks.values(), kernels)]
            # One block a kernel: `column_blocks` then cuts nothing, and each product takes the whole kernel.
            with _cell.taking_blocks({id(kernel): [whole] for kernel, whole in pairs}), \
                    keras.StatelessScope(state_mapping=pairs):
                return function(**inputs)

        return form

    def tracing(self, function):
        """`function`, with its arguments' names, run inside `reading()`: what an export traces."""

        @functools.wraps(function)
        def traced(*args, **kwargs):
            with self.reading():
                return function(*args, **kwargs)

        return traced

    @contextlib.contextmanager
    def reading(self):
        """Inside a function being traced: the stored blocks, read once, stand for their kernels."""
        if not self._blocks:
            yield
            return
        import tensorflow as tf

        from zoo.layers import _cell

        with tf.name_scope(STORED_COLUMN_BLOCKS):
            reads = {key: [block.read_value() for block in blocks] for key, (_, blocks) in self._blocks.items()}
            joined = [(kernel, tf.concat(reads[key], axis=1)) for key, (kernel, _) in self._blocks.items()]
        # A join that no output needs is pruned at run time.
        with _cell.taking_blocks(reads), keras.StatelessScope(state_mapping=joined):
            yield


class RecurrentLayer(keras.layers.Layer):
    """Base of every zoo recurrent layer: a cell run over time.

    Subclasses build their cell in `__init__` from their own arguments and
    list those arguments in `get_config` (flat, like `keras.layers.LSTM`).

    Args:
        cell: a zoo cell (`project_inputs`, `call`, `state_size`, `output_size`).
        return_sequences: return the output at every step, (B, T, H), instead
            of the last one, (B, H).
        return_state: also return the final states, `[output, *states]`.
        go_backwards: process the sequence in reverse (also what
            `keras.layers.Bidirectional` flips for its backward copy).

    Call arguments:
        sequences: (B, T, I) tensor.
        initial_state: optional list of (B, S_i) tensors; zeros (or the cell's
            learned initial state) when omitted.
        mask: optional (B, T) boolean tensor.
    """

    # Never stateful: state is a value passed in and out, nothing is stored between
    # calls. `keras.layers.Bidirectional` reads both attributes from the layer it wraps.
    stateful = False
    states = None

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.supports_masking = True

    @property
    def units(self):
        return self.cell.units

    def build(self, input_shape):
        self.cell.build(input_shape)

    def get_initial_state(self, batch_size):
        return self.cell.get_initial_state(batch_size)

    def _check_initial_state(self, initial_state):
        sizes = list(self.cell.state_size)
        if len(initial_state) != len(sizes):
            raise ValueError(
                f"{self.__class__.__name__} expects {len(sizes)} initial state tensor(s) "
                f"of widths {sizes}. Received: {len(initial_state)} tensor(s)."
            )

    def call(self, sequences, initial_state=None, mask=None, training=None):
        if initial_state is None:
            states = self.get_initial_state(ops.shape(sequences)[0])
        else:
            initial_state = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            self._check_initial_state(initial_state)
            states = [ops.cast(s, self.compute_dtype) for s in initial_state]
        with weights_read_once(self.cell):
            outputs_tm, last_output, final_states = run_time_loop(
                self.cell,
                ops.transpose(sequences, (1, 0, 2)),
                states,
                self.cell.output_size,
                mask=mask,
                go_backwards=self.go_backwards,
                time_major=True,
                project=self.cell.project_inputs,  # outside the loop: only the recurrent matmul runs per step
            )
        result = ops.transpose(outputs_tm, (1, 0, 2)) if self.return_sequences else last_output
        return [result, *final_states] if self.return_state else result

    def step(self, inputs, states, keep=None):
        """One time step without the time loop: the numbers `call` gives on a one-step sequence.

        A sampler feeds one character at a time; run through `call`, each of
        those steps pays for the loop's set-up (its chunks, TensorArrays and
        while loops), many times the step's own ops at small batches.

        Args:
            inputs: (B, I) tensor, this step's inputs.
            states: list of (B, S_i) tensors.
            keep: optional (B,) boolean; rows where it is False keep their
                states and output zeros, as a masked step of `call` does.

        Returns:
            `(output (B, H), new_states)`.
        """
        states = [ops.cast(s, self.compute_dtype) for s in states]
        output, new_states = self.cell(self.cell.project_inputs(inputs), states)
        if keep is None:
            return output, list(new_states)
        keep = ops.expand_dims(keep, -1)
        output = ops.where(keep, output, ops.zeros_like(output))
        return output, [ops.where(keep, new, old) for new, old in zip(new_states, states)]

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        out = (batch, steps, self.cell.output_size) if self.return_sequences else (batch, self.cell.output_size)
        if not self.return_state:
            return out
        return (out, *[(batch, size) for size in self.cell.state_size])  # a tuple, as Keras's RNN returns

    def compute_mask(self, sequences, mask=None):
        if not self.return_sequences:
            return [None] * (1 + len(self.cell.state_size)) if self.return_state else None
        output_mask = mask
        if self.return_state:
            return [output_mask] + [None] * len(self.cell.state_size)
        return output_mask

    def get_config(self):
        return {
            **super().get_config(),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
        }
