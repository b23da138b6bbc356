"""`benchmarks.serving_load` end to end on a tiny load (the real run is 64 clients x 500 characters)."""

import json

import pytest

from benchmarks import serving_load


def test_batching_parameters_fit_every_client_in_one_lane():
    from serving.batching import BatchingOptions

    options = BatchingOptions.from_text(serving_load.batching_parameters(64))
    assert options.max_batch_size == 64 and options.batch_timeout_micros == 0


@pytest.mark.slow
def test_a_small_run_writes_every_figure(tmp_path):
    out = tmp_path / "load.json"
    serving_load.main(["--clients", "2", "--tokens", "16", "--out", str(out)])
    result = json.loads(out.read_text())
    assert len(result["in_process_chars_per_s"]) == 2 and result["machine"]["cpu_count"] >= 1
    assert len(result["in_process_cpu_s"]) == 2 and min(result["in_process_cpu_s"]) > 0
    for run in result["runs"].values():
        assert (run["errors"], run["characters"], run["server_exit_code_on_sigterm"]) == (0, 32, 0)
        assert run["first_piece_s"]["p99"] >= run["first_piece_s"]["p50"] > 0
        assert set(run["bars"]) == {"ratio_at_least_60_percent", "zero_errors", "rss_growth_under_10_percent",
                                    "first_piece_p99_under_1_s"}
