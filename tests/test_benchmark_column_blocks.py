"""`benchmarks.column_blocks`: its two contenders differ only in the blocks, and its rows say whether they agree."""

import numpy as np

import zoo
from benchmarks import column_blocks
from zoo.layers import _loop


def _matmuls(concrete):
    graph = concrete.graph.as_graph_def()
    nodes = [*graph.node, *(node for function in graph.library.function for node in function.node_def)]
    return sum(node.op == "MatMul" for node in nodes)


def test_the_whole_kernel_contender_has_no_blocks_and_the_default_is_restored():
    lm = zoo.get("char_gru", units=512)  # 512 × 1536 kernels: three blocks of 512 columns each
    lm(np.zeros((1, 1), np.int32))
    default = _loop.STEP_BLOCK_ELEMENTS
    traced = column_blocks._generate_fns(lm)
    assert _loop.STEP_BLOCK_ELEMENTS == default
    assert _matmuls(traced["blocks"]) > _matmuls(traced["whole"])


def test_a_row_reports_rates_ratios_and_that_both_draw_the_same_text():
    (row,) = column_blocks.measure("char_gru", [2], characters=4, rounds=1)
    assert row["same_text_and_state"] is True
    assert row["model"] == "char_gru" and row["batch"] == 2 and set(row["chars_per_s"]) == {"blocks", "whole"}
    assert row["blocks_over_whole_wall"]["median"] > 0
