"""`benchmarks.column_blocks`: its two contenders differ only in the blocks, and its rows say whether they agree."""

import numpy as np

import zoo
from benchmarks import column_blocks
from tests.reference import matmuls_in
from zoo.layers import _loop


def test_the_whole_kernel_contender_has_no_blocks_and_the_default_is_restored():
    lm = zoo.get("char_gru", units=512)  # 64 × 1536 and 512 × 1536 kernels: one block, and three of 512 columns
    lm(np.zeros((1, 1), np.int32))
    default = _loop.STEP_BLOCK_ELEMENTS
    traced = column_blocks._generate_fns(lm, characters=3)
    assert _loop.STEP_BLOCK_ELEMENTS == default
    assert matmuls_in(traced["blocks"]) > matmuls_in(traced["whole"])
    # Layer 1: its input kernel whole, its recurrent one in 3; layer 2: both in 3; the head whole.
    assert matmuls_in(traced["blocks_products"]) == 1 + 3 + 3 + 3 + 1
    assert matmuls_in(traced["whole_products"]) == 2 + 2 + 1
    # The stored blocks stand for the cut kernels: no kernel is split in the graph, and the products are the blocks'.
    assert matmuls_in(traced["stored"]) == matmuls_in(traced["blocks"])
    assert not [op for op in traced["stored"].graph.get_operations() if op.type in ("Split", "SplitV")
                and op.name.rsplit("/", 1)[-1].startswith(_loop.COLUMN_BLOCKS) and len(op.outputs) > 1]


def test_a_row_reports_rates_ratios_and_that_both_draw_the_same_text():
    (row,) = column_blocks.measure("char_gru", [2], characters=4, rounds=1, chunk_characters=3)
    assert row["same_text_and_state"] is True and row["stream_chunks"]["same_text_and_state"] is True
    assert row["model"] == "char_gru" and row["batch"] == 2
    assert set(row["chars_per_s"]) == {"blocks", "whole", "blocks_products", "whole_products"}
    assert row["blocks_over_whole_wall"]["median"] > 0 and 0 < row["products_share_of_step_wall"]["blocks"]["median"]
    assert row["stream_chunks"]["characters"] == 3 and set(row["stream_chunks"]["ms_per_call"]) == {"blocks", "stored"}
