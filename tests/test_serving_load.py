"""`benchmarks.serving_load` end to end on a tiny load (the real run is 64 clients x 500 characters), and
`benchmarks.serving_pieces` on a few calls."""

import json

import pytest

from benchmarks import serving_load


def test_batching_parameters_fit_every_client_in_one_lane():
    from serving.batching import BatchingOptions

    options = BatchingOptions.from_text(serving_load.batching_parameters(64))
    assert options.max_batch_size == 64 and options.batch_timeout_micros == 0


def test_an_error_in_any_round_fails_the_zero_errors_bar():
    def run(ratio, errors):
        return {"chars_per_s": 1.0, "in_process_chars_per_s": 1.0, "ratio_to_in_process": ratio, "server_cpu_s": 1.0,
                "clients_cpu_s": 1.0, "errors": errors, "server_exit_code_on_sigterm": 0, "first_piece_s": {"p99": 0.1},
                "generation": {"calls": 1, "steps": 1, "row_steps": 1, "rows_per_step": 1.0},
                "bars": {"zero_errors": errors == 0}}

    median = serving_load._median_round([run(0.5, 0), run(0.4, 2), run(0.6, 0)])
    assert median["ratio_to_in_process"] == 0.5 and median["errors_all_rounds"] == 2
    assert median["bars"]["zero_errors"] is False  # the median round had none; another round did


@pytest.mark.slow
def test_a_small_run_writes_every_figure(tmp_path):
    out = tmp_path / "load.json"
    # One round: each run starts its own server, and the median over rounds is tested above.
    serving_load.main(["--clients", "2", "--tokens", "16", "--rounds", "1", "--runs", "batching_off",
                       "batching_on_rest_client_requests", "batching_on_heap_unfrozen", "--out", str(out)])
    result = json.loads(out.read_text())
    # measured before the first run and after each of the 3 runs
    assert len(result["in_process_chars_per_s"]) == 4 and result["machine"]["cpu_count"] >= 1
    assert len(result["in_process_cpu_s"]) == 4 and min(result["in_process_cpu_s"]) > 0
    assert set(result["runs"]) == {"batching_off", "batching_on_rest_client_requests", "batching_on_heap_unfrozen"}
    assert result["runs"]["batching_on_rest_client_requests"]["clients_rest"] == 2  # all on REST, through requests
    transports = {"batching_off": "urllib3", "batching_on_rest_client_requests": "requests",
                  "batching_on_heap_unfrozen": "urllib3"}
    assert result["rest_client_transport"] == transports
    assert result["server_flags_extra"] == {"batching_on_heap_unfrozen": ["--freeze_heap=false"]}
    assert "--tensorflow_intra_op_parallelism=1" in result["server_flags_batching_off"]
    assert result["tensorflow_threads"]["intra_op"] == 1
    for run in result["runs"].values():
        assert (run["errors"], run["characters"], run["server_exit_code_on_sigterm"]) == (0, 32, 0)
        # every character the streams got was drawn by the generation engine during the run, a step at a time
        generation = run["generation"]
        assert generation["row_steps"] == 32 and 16 <= generation["steps"] <= 32
        assert 1 <= generation["rows_per_step"] <= 2
        assert len(run["rounds"]) == 1 and run["errors_all_rounds"] == 0
        ratios = [r["ratio_to_in_process"] for r in run["rounds"]]
        assert run["ratio_to_in_process"] in ratios and run["ratio_median_round"]["min"] == min(ratios)
        assert run["first_piece_s"]["p99"] >= run["first_piece_s"]["p50"] > 0
        assert set(run["bars"]) == {"ratio_at_least_60_percent", "zero_errors", "rss_growth_under_10_percent",
                                    "first_piece_p99_under_1_s"}


@pytest.mark.slow
def test_the_pieces_of_one_call_are_each_timed_and_the_bodies_measured(tmp_path):
    from benchmarks import serving_pieces

    out = tmp_path / "pieces.json"
    serving_pieces.main(["--calls", "2", "--rounds", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    pieces = result["cpu_us_per_call"]
    assert set(pieces) >= {"signature", "data_plane", "rest_server_read", "rest_server_write", "grpc_servicer"}
    assert all(0 < f["min_us"] <= f["median_us"] <= f["max_us"] for f in pieces.values())
    # 9 significant digits per float32, not float64's 17: the REST request is far shorter than before
    assert result["rest_request_bytes"] < 0.7 * result["rest_request_bytes_float64_digits"]
