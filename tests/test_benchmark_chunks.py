"""`benchmarks.chunks`: its chunked contender computes what one loop does, in as many loops as asked."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import chunks

B, T, H = 3, 7, 5


@pytest.mark.parametrize("family", sorted(chunks.LAYERS))
def test_the_chunked_loop_gives_the_outputs_and_gradients_of_one_loop(family):
    xs = tf.constant(np.random.default_rng(0).normal(size=(B, T, H)), tf.float32)
    layer = chunks.LAYERS[family](H)
    layer.build(xs.shape)

    def outputs_and_gradients(xs):
        with tf.GradientTape() as tape:
            outputs = layer(xs, training=True)
            loss = tf.reduce_sum(outputs**2)
        return [outputs, *tape.gradient(loss, layer.trainable_variables)]

    results = []
    for count in (1, 3):
        with chunks.cut_into(count):
            function = tf.function(outputs_and_gradients)
            graph = function.get_concrete_function(xs).graph
        loops = [op for op in graph.get_operations() if op.type in ("While", "StatelessWhile")]
        assert len(loops) == 2 * count  # forward and gradient loop per chunk
        results.append([t.numpy() for t in function(xs)])
    for one, cut in zip(*results):
        np.testing.assert_allclose(cut, one, rtol=1e-5, atol=1e-6)


def test_fewer_than_two_chunks_are_refused(capsys):
    with pytest.raises(SystemExit):
        chunks.main(["--chunks", "1"])
    assert "`--chunks` must be at least 2. Received: --chunks=1" in capsys.readouterr().err
