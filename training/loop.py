"""The training loop: `@tf.function` steps, truncated BPTT, checkpoints that resume.

A run is a folder (`TrainConfig.out_dir`) holding `config.json`, checkpoints
(model, optimizer, step and the carried stream state), `metrics.jsonl` and
TensorBoard logs. Starting a run whose folder has a checkpoint resumes it, and
because the data position and the carried state are functions of the step, a
resumed run ends exactly where an uninterrupted one would.
"""

import math
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

import zoo
from training import bptt, runs
from training.config import TrainConfig
from training.data import load_corpus
from training.runs import LossNotFiniteError

__all__ = ["Trainer", "LossNotFiniteError"]

LN2 = math.log(2.0)


def _cross_entropy_sum(targets, logits):
    # float32 softmax even under mixed precision: bfloat16 log-probabilities are too coarse.
    per_char = keras.losses.sparse_categorical_crossentropy(targets, tf.cast(logits, tf.float32), from_logits=True)
    return tf.reduce_sum(per_char)


class Trainer:
    """Trains a registered character model on a corpus.

    Args:
        config: a `TrainConfig`.
        corpus: a `training.data.Corpus`; loaded from `config.text` when omitted.
    """

    def __init__(self, config: TrainConfig, corpus=None):
        self.config = config
        runs.limit_cpu_threads(config.threads)
        runs.prepare(config.seed, config.mixed_precision)
        self.corpus = corpus or load_corpus(config.text)
        self.train_ids = self.corpus.encode(self.corpus.train)
        self.val_ids = self.corpus.encode(self.corpus.validation)
        self.model = zoo.get(config.model, **{"vocabulary": self.corpus.vocabulary, **config.overrides})
        self.model(np.zeros((config.batch_size, 1), np.int32))  # create the weights
        decay_steps = config.steps if config.lr_decay == "cosine" else None
        self.optimizer = runs.make_optimizer(
            config.learning_rate, config.clipnorm, self.model.trainable_variables, decay_steps
        )
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.carried = [
            tf.Variable(tf.zeros((config.batch_size, size)), trainable=False, name=f"carried_{i}")
            for i, size in enumerate(self.model.state_sizes)
        ]
        self.out_dir = pathlib.Path(config.out_dir)
        self.manager = runs.checkpoint_manager(
            self.out_dir, model=self.model, optimizer=self.optimizer, step=self.step, carried=self.carried
        )
        self._train_step = tf.function(self._train_step_eager, jit_compile=config.jit_compile)
        self._eval_step = tf.function(self._eval_step_eager)
        self._epoch_streams = {}

    # -- the math ---------------------------------------------------------------
    def _train_step_eager(self, inputs, targets, flat_states):
        states = self.model.unpack_states(tf.concat(flat_states, axis=-1))
        with tf.GradientTape() as tape:
            logits, states = self.model(inputs, states=states, training=True)
            loss = _cross_entropy_sum(targets, logits) / tf.cast(tf.size(targets), tf.float32)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return loss, [tf.cast(s, tf.float32) for layer_states in states for s in layer_states]

    def _eval_step_eager(self, inputs, targets, flat_states):
        states = self.model.unpack_states(tf.concat(flat_states, axis=-1))
        logits, states = self.model(inputs, states=states, training=False)
        final_states = [tf.cast(s, tf.float32) for layer_states in states for s in layer_states]
        return _cross_entropy_sum(targets, logits), final_states

    # -- data position ----------------------------------------------------------
    def _streams(self, epoch):
        if epoch not in self._epoch_streams:
            offset = bptt.epoch_offset(self.config.seed, epoch, self.config.seq_len)
            self._epoch_streams = {epoch: bptt.as_streams(self.train_ids, self.config.batch_size, offset)}
        return self._epoch_streams[epoch]

    def _locate(self, step):
        """(epoch, chunk index) of update `step`."""
        epoch = 0
        while True:
            offset = bptt.epoch_offset(self.config.seed, epoch, self.config.seq_len)
            length = (len(self.train_ids) - offset) // self.config.batch_size
            count = (length - 1) // self.config.seq_len
            if step < count:
                return epoch, step
            step, epoch = step - count, epoch + 1

    # -- running ----------------------------------------------------------------
    def evaluate(self, max_chars=None, batch_size=None):
        """Validation cross-entropy in nats per character (all of it when `max_chars` is None)."""
        ids = self.val_ids if max_chars is None else self.val_ids[: max_chars + 1]
        batch = batch_size or self.config.batch_size
        streams = bptt.as_streams(ids, batch)
        states = [tf.zeros((batch, size)) for size in self.model.state_sizes]
        total, count = 0.0, 0
        for index in range(bptt.chunk_count(streams, self.config.seq_len)):
            inputs, targets = bptt.chunk(streams, index, self.config.seq_len)
            loss_sum, states = self._eval_step(inputs, targets, states)
            total, count = total + float(loss_sum), count + targets.size
        return total / count

    def restore(self):
        """Resumes from the newest checkpoint, if any; returns the step reached."""
        runs.restore(self.manager)
        return int(self.step.numpy())

    def fit(self, verbose=1):
        """Trains until `config.steps`; returns the final metrics."""
        config = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(config.to_json())
        start = self.restore()
        if verbose and start:
            print(f"Resumed {self.out_dir} at step {start}.")
        if verbose:
            print(runs.device_line(config.model))
        log = runs.MetricsLog(self.out_dir)
        progress = keras.utils.Progbar(config.steps, stateful_metrics=["bpc", "val_bpc"], verbose=verbose)
        progress.update(start)
        began, began_cpu = time.time(), time.process_time()
        for step in range(start, config.steps):
            loss = self._one_update(step)
            metrics = {"step": step + 1, "loss": loss, "bpc": loss / LN2, "seconds": time.time() - began,
                       "cpu_seconds": time.process_time() - began_cpu, "segment_start": began}
            if (step + 1) % config.eval_every == 0:
                metrics["val_nats"] = self.evaluate(config.eval_chars)
                metrics["val_bpc"] = metrics["val_nats"] / LN2
            log.write(metrics)
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                self.manager.save(checkpoint_number=step + 1)
            progress.update(step + 1, [(k, metrics[k]) for k in ("bpc", "val_bpc") if k in metrics])
        return self.final_metrics()

    def final_metrics(self):
        """Validation on every held-out character, and what the training cost (all resumed segments)."""
        val_nats = self.evaluate()
        cost = runs.run_cost(self.out_dir)
        return {"val_nats_per_char": val_nats, "val_bits_per_char": val_nats / LN2, "steps": int(self.step.numpy()),
                "train_cpu_minutes": cost["cpu_seconds"] / 60, "train_wall_minutes": cost["wall_seconds"] / 60,
                "threads": self.config.threads}

    def _one_update(self, step):
        epoch, index = self._locate(step)
        if index == 0:  # a new epoch starts new streams: nothing to carry over
            for variable in self.carried:
                variable.assign(tf.zeros_like(variable))
        inputs, targets = bptt.chunk(self._streams(epoch), index, self.config.seq_len)
        loss, states = self._train_step(inputs, targets, [v.value() for v in self.carried])
        loss = float(loss)
        runs.check_finite(loss, step + 1, self.manager)
        for variable, value in zip(self.carried, states):
            variable.assign(tf.cast(value, variable.dtype))  # the carried state stays float32
        self.step.assign(step + 1)
        return loss
