"""What every training run shares, whatever it trains: seeding and precision,
the optimizer, checkpoints, the NaN guard and the metrics log.

A run is a folder holding `config.json`, `checkpoints/`, `metrics.jsonl` and
TensorBoard `logs/`; `training.loop` is built from these pieces.
"""

import json
import math
import pathlib
import warnings

import keras
import tensorflow as tf
from keras import ops

__all__ = ["LossNotFiniteError", "prepare", "limit_cpu_threads", "run_cost", "make_optimizer", "AveragingAdam",
           "TwoRateOptimizer", "checkpoint_manager", "check_finite", "MetricsLog", "device_line"]


class LossNotFiniteError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def prepare(seed, mixed_precision):
    """Seeds Python, NumPy and the backend; sets the dtype policy for the run."""
    keras.utils.set_random_seed(seed)
    # bfloat16 keeps float32's exponent range, so no loss scaling is needed (Ampere/Hopper GPUs).
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_precision else "float32")


def limit_cpu_threads(threads):
    """Runs TensorFlow's ops on `threads` CPU threads (0 leaves TensorFlow's default).

    Must come before TensorFlow runs its first op: the thread pools are made then.
    """
    if not threads:
        return
    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    if current == (threads, threads):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # The run is still valid on the pools TensorFlow already made; only its CPU-time figure differs.
        warnings.warn(
            f"`threads={threads}` was not applied: TensorFlow already ran ops in this process on "
            f"{f'{current[0]} thread(s)' if current[0] else 'its default thread pools'}. "
            f"Start a new process for a {threads}-thread run.",
            stacklevel=2,
        )


def make_optimizer(learning_rate, clipnorm, variables, decay_steps=None, ema_momentum=0.0):
    """Adam with a global gradient-norm clip: tames the exploding-gradient spikes of BPTT.

    With `decay_steps` the rate follows a cosine from `learning_rate` down to 5% of it
    at that step; the schedule reads the optimizer's own step counter, which is
    checkpointed, so a resumed run continues on the same curve. With `ema_momentum`
    the optimizer also keeps an average of the weights (`AveragingAdam`, its averages
    checkpointed with the moments); `finalize_variable_values` puts it in.
    """
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.05)
    if ema_momentum:
        optimizer = AveragingAdam(learning_rate, global_clipnorm=clipnorm, use_ema=True, ema_momentum=ema_momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm)
    optimizer.build(variables)
    return optimizer


@keras.saving.register_keras_serializable(package="training")
class AveragingAdam(keras.optimizers.Adam):
    """Adam whose weight average (`use_ema`) is the plain mean of every update's weights until the exponential
    one would look further back, then exponential at `ema_momentum`: after update k (counting from 1) the
    momentum is min(ema_momentum, (k - 1) / k).

    Keras's own average starts from the first update's weights at full momentum, so a run shorter than its
    horizon (1 / (1 - ema_momentum) updates) would hand over weights close to the first update's: 6 updates
    at 0.999 keep 99.5% of them. Past the horizon both are the same average; what they kept from the first
    horizon has shrunk by ema_momentum per update since.
    """

    def _update_model_variables_moving_average(self, trainable_variables):
        done_before = ops.cast(self.iterations, "float32")  # Keras counts this update after averaging
        momentum = ops.minimum(self.ema_momentum, done_before / (done_before + 1.0))
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                average.assign(momentum * average + (1.0 - momentum) * variable)


class TwoRateOptimizer(tf.Module):
    """Two Keras optimizers over a split of the variables, behind one `apply`: the variables whose path
    contains `slow_key` step at `slow_factor` times the learning rate (expRNN trains its orthogonal parameter
    ten times slower than the rest, Lezcano-Casado & Martínez-Rubio 2019). Adam and RMSprop are invariant to
    a gradient's scale, so scaling the gradient could not do this.

    The gradient is clipped to `clipnorm` over all variables together, as one optimizer would.

    Args:
        make: `make(learning_rate) -> keras.optimizers.Optimizer` (without clipping).
        learning_rate: the rate of the other variables.
        clipnorm: global gradient-norm clip, or None.
        variables: every trained variable.
        slow_key: a substring of the slow variables' paths.
        slow_factor: their rate / `learning_rate`.

    Raises:
        ValueError: no variable's path contains `slow_key`.
    """

    def __init__(self, make, learning_rate, clipnorm, variables, slow_key, slow_factor):
        super().__init__(name="two_rate_optimizer")
        self.slow_key = slow_key
        self.clipnorm = clipnorm
        self.is_slow = [slow_key in variable.path for variable in variables]
        if not any(self.is_slow):
            raise ValueError(f"No variable's path contains `slow_key`. Received: slow_key={slow_key!r}, "
                             f"paths {[variable.path for variable in variables]}")
        self.fast = make(learning_rate)
        self.slow = make(learning_rate * slow_factor)
        self.fast.build([v for v, slow in zip(variables, self.is_slow) if not slow])
        self.slow.build([v for v, slow in zip(variables, self.is_slow) if slow])

    @property
    def iterations(self):
        return self.fast.iterations

    def apply(self, gradients, variables):
        gradients = [tf.convert_to_tensor(g) for g in gradients]
        if self.clipnorm:
            gradients, _ = tf.clip_by_global_norm(gradients, self.clipnorm)
        for optimizer, want in ((self.fast, False), (self.slow, True)):
            pairs = [(g, v) for g, v, slow in zip(gradients, variables, self.is_slow) if slow == want]
            optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])


def checkpoint_manager(out_dir, max_to_keep=3, **objects):
    """A `tf.train.CheckpointManager` over `objects` in `<out_dir>/checkpoints`."""
    checkpoint = tf.train.Checkpoint(**objects)
    return tf.train.CheckpointManager(checkpoint, pathlib.Path(out_dir) / "checkpoints", max_to_keep=max_to_keep)


def restore(manager, directory=None):
    """Restores the newest checkpoint of `directory` (default: the manager's own), if any; returns whether one
    was found. Workers of a multi-host run all restore the chief's."""
    latest = tf.train.latest_checkpoint(str(directory)) if directory else manager.latest_checkpoint
    if latest:
        try:
            manager.checkpoint.restore(latest).assert_existing_objects_matched()
        except (ValueError, AssertionError) as error:
            raise ValueError(
                f"The checkpoint {latest} does not fit this run's model: the folder holds a run with another "
                f"architecture or config. Use a new `out_dir` or delete the folder. Received: {error}"
            ) from error
    return bool(latest)


def check_finite(loss, step, manager):
    """Raises `LossNotFiniteError` naming the step and the checkpoint that stays."""
    if not math.isfinite(loss):
        raise LossNotFiniteError(
            f"The loss became {loss} at step {step}; training stopped. The last good checkpoint "
            f"({manager.latest_checkpoint}) is kept: lower learning_rate or clipnorm and run again to resume."
        )


def device_line(model_name):
    gpus = tf.config.list_physical_devices("GPU")
    return f"Training {model_name} on {'GPU ' + str([g.name for g in gpus]) if gpus else 'CPU'}."


class MetricsLog:
    """Per-step metrics to TensorBoard (`logs/`) and to `metrics.jsonl`."""

    def __init__(self, out_dir):
        self.out_dir = pathlib.Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = tf.summary.create_file_writer(str(self.out_dir / "logs"))

    def write(self, metrics):
        with self.writer.as_default(step=metrics["step"]):
            for key, value in metrics.items():
                if key != "step":
                    tf.summary.scalar(key, value)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")


def run_cost(out_dir):
    """Wall and CPU seconds a run folder's training took, over every resumed segment.

    Each process logs `seconds`/`cpu_seconds` from its own start, and the time it
    started as `segment_start`. Steps a killed segment ran past its last checkpoint
    were paid for and are counted.
    """
    totals = {"wall_seconds": 0.0, "cpu_seconds": 0.0, "segments": 0}
    last = None
    path = pathlib.Path(out_dir) / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    for row in rows:
        if _starts_segment(row, last):
            _close_segment(totals, last)
            totals["segments"] += 1
        last = row
    _close_segment(totals, last)
    return totals


def _starts_segment(row, last):
    if last is None:
        return True
    if "segment_start" in row or "segment_start" in last:
        return row.get("segment_start") != last.get("segment_start")
    # Logs from before `segment_start`: a resume shows as a step that does not follow or a clock that went back.
    return row["step"] != last["step"] + 1 or row["seconds"] < last["seconds"]


def _close_segment(totals, last_row):
    if last_row is not None:
        totals["wall_seconds"] += last_row["seconds"]
        totals["cpu_seconds"] += last_row.get("cpu_seconds", 0.0)  # logs before cpu_seconds existed: unknown
