"""benchmarks.char_cost: the matrix-product count an update's CPU time is set against."""

import zoo
from benchmarks.char_cost import update_matmul_flops


def test_an_update_counts_every_layers_products_and_the_head_three_times():
    model = zoo.get("char_lstm", vocabulary="abcde", embedding_dim=3, units=4, num_layers=2)
    per_token_forward = 2 * (3 + 4) * 4 * 4 + 2 * (4 + 4) * 4 * 4 + 2 * 4 * 5  # x·W and h·U per layer, the head
    assert update_matmul_flops(model, batch_size=2, seq_len=7) == 3 * per_token_forward * 2 * 7
    gru = zoo.get("char_gru", vocabulary="abcde", embedding_dim=3, units=4, num_layers=1)
    assert update_matmul_flops(gru, batch_size=1, seq_len=1) == 3 * (2 * (3 + 4) * 3 * 4 + 2 * 4 * 5)
