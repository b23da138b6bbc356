"""benchmarks/peers.py: the ratios and bars it reports, a tiny run of the harness, and the PyTorch copy of char_lstm
that its sampling comparison relies on."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import zoo
from benchmarks import peers
from tests.reference import randomize_weights
from zoo.layers.gru import GRUCell
from zoo.layers.peephole_lstm import PeepholeLSTMCell


def test_summarize_reports_rates_per_round_ratios_and_bars():
    # zoo 2x PyTorch's speed in every round; Keras 1.1x slower than the zoo in round 0 and 1.5x in round 1.
    wall = {"zoo": [0.1, 0.2], "pytorch": [0.2, 0.4], "keras": [0.11, 0.3]}
    cpu = {"zoo": [0.2, 0.2], "pytorch": [0.1, 0.1], "keras": [0.2, 0.2]}
    row = peers.summarize(wall, cpu, 100, peers.TRAINING_BARS, peers.TRAINING_BARS)
    assert row["per_s"]["zoo"] == {"median": pytest.approx(750), "min": pytest.approx(500), "max": pytest.approx(1000)}
    assert row["ratios"]["zoo/pytorch"]["wall"]["median"] == pytest.approx(2.0)
    assert row["ratios"]["zoo/pytorch"]["cpu"]["median"] == pytest.approx(0.5)
    assert row["ratios"]["zoo/keras"]["wall"] == {"median": pytest.approx(1.3), "min": pytest.approx(1.1),
                                                  "max": pytest.approx(1.5)}
    assert row["bars"]["zoo/pytorch"]["met"] is True
    assert row["bars"]["zoo/keras"]["met"] is True  # judged on the median, 1.3 >= 1.2
    missed = peers.summarize({"zoo": [1.0], "pytorch": [0.8], "keras": [1.0]}, cpu, 1, peers.TRAINING_BARS,
                             peers.TRAINING_BARS)["bars"]
    assert missed["zoo/pytorch"] == {"bar": 1.0, "value": pytest.approx(0.8), "met": False,
                                     "missed_by": pytest.approx(0.2)}
    assert missed["zoo/keras"]["missed_by"] == pytest.approx(0.2)


def test_peer_config_checks_its_fields():
    with pytest.raises(ValueError, match="family"):
        peers.PeerConfig(family="transformer")
    with pytest.raises(ValueError, match="layer"):
        peers.PeerConfig(layer="torch")


def test_fixed_batch_is_the_same_at_every_step():
    config = peers.PeerConfig(units=3, time_steps=4, batch_size=2)
    source = config.training_data()
    assert source.carries_state is False
    inputs, targets, fresh = source.batch(0)
    assert inputs.shape == (2, 4, 3) and targets.shape == (2, 3) and inputs.dtype == np.float32 and fresh
    assert source.batch(7)[0] is inputs


@pytest.mark.slow  # about 4 CPU-seconds, most of it importing PyTorch
def test_torch_copy_computes_the_keras_char_lm_logits():
    torch = pytest.importorskip("torch")
    model = zoo.get("char_lstm", vocabulary="\n abcdefghij", units=12, embedding_dim=6)
    model(np.zeros((1, 1), np.int32))
    randomize_weights(model, np.random.default_rng(0), scale=0.4)  # peepholes too, so their terms count
    ids = np.random.default_rng(1).integers(0, 12, size=(3, 7)).astype(np.int32)
    expected, _ = model(ids)
    net = peers.TorchCharLM(model)
    states = [(torch.zeros(3, 12), torch.zeros(3, 12)) for _ in net.layers]
    with torch.no_grad():
        for t in range(ids.shape[1]):
            logits, states = net.step(torch.from_numpy(ids[:, t]).long(), states)
            np.testing.assert_allclose(logits.numpy(), np.asarray(expected[:, t]), atol=1e-5)


def test_torch_copy_rejects_other_cells():  # checked before PyTorch is imported: runs without it
    layers = [SimpleNamespace(name="rnn_0", cell=PeepholeLSTMCell(4)), SimpleNamespace(name="rnn_1", cell=GRUCell(4))]
    with pytest.raises(ValueError, match="Received: a GRUCell in layer 'rnn_1'"):
        peers.TorchCharLM(SimpleNamespace(vocabulary="ab", recurrent=layers))
    layers = [SimpleNamespace(name="rnn_0", cell=PeepholeLSTMCell(4, recurrent_activation="hard_sigmoid"))]
    with pytest.raises(ValueError, match="peephole LSTM layers"):
        peers.TorchCharLM(SimpleNamespace(vocabulary="ab", recurrent=layers))


@pytest.mark.slow
def test_copied_weights_give_the_shipped_generate_signatures_greedy_text():
    pytest.importorskip("torch")
    _, paths, net, _ = peers.load_generation_pair()  # raises when the texts differ
    zoo_text, torch_text = peers.greedy_pair(paths["zoo"], net, "JULIET.")
    assert len(zoo_text) == peers.GREEDY_CHARS
    assert zoo_text == torch_text


@pytest.mark.slow
def test_tiny_run_reports_every_contender_ratio_and_bar(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "peers.json"
    peers.main(["--family", "gru", "--batch", "2", "--units", "8", "--time-steps", "5", "--rounds", "1",
                "--threads", "1", "--parts", "training", "--min-block-seconds", "0.05", "--out", str(out)])
    result = json.loads(out.read_text())
    (row,) = result["threads"]["1"]["training"]
    assert (row["family"], row["batch"], row["units"], row["time_steps"]) == ("gru", 2, 8, 5)
    assert set(row["tokens_per_s"]) == {"zoo", "pytorch", "keras"}
    assert all(rate["median"] > 0 for rate in row["tokens_per_s"].values())
    for name, bar in (("zoo/pytorch", 1.0), ("zoo/keras", 1.2)):
        wall = row["ratios"][name]["wall"]["median"]
        assert wall == pytest.approx(row["tokens_per_s"]["zoo"]["median"] / row["tokens_per_s"][name[4:]]["median"])
        assert row["bars"][name]["bar"] == bar and row["bars"][name]["met"] == (wall >= bar)
    assert result["bar_summary"]["judged"] == 2
    assert result["machine"]["torch"].startswith("2.")
    assert set(row["xla"]) == {"zoo", "keras"} and all(isinstance(v, bool) for v in row["xla"].values())
    assert result["parts_measured_by"]["training"]["command"].startswith("python -m benchmarks.peers --family gru")


def test_flop_rates_put_each_training_row_in_units_of_the_gemm_peak():
    tokens = {"zoo": {"median": 1e6}, "keras": {"median": 5e5}, "pytorch": {"median": 2.5e5}}
    by_threads = {"1": {"gemm_peak": {"gflops_per_s": {"tensorflow": {"median": 100.0}, "pytorch": {"median": 80.0}}},
                        "training": [{"family": "lstm", "batch": 2, "units": 10, "tokens_per_s": tokens}]},
                  "2": {"training": [{"family": "gru", "batch": 2, "units": 10, "tokens_per_s": tokens}]}}
    peers.flop_rates(by_threads)
    (row,) = by_threads["1"]["training"]
    assert row["matmul_flops_per_token"] == 10 * 4 * 10**2  # forward x·W, h·U; backward dW, dU, dh
    assert row["matmul_gflops_per_s"] == pytest.approx({"zoo": 4.0, "keras": 2.0, "pytorch": 1.0})
    assert row["share_of_gemm_peak"] == pytest.approx({"zoo": 0.04, "keras": 0.02, "pytorch": 0.01})  # the best
    assert row["zoo_share_needed_for_keras_bar"] == pytest.approx(1.2 * 0.02)
    assert "share_of_gemm_peak" not in by_threads["2"]["training"][0]  # no peak measured at that thread count


def test_a_peak_run_times_one_product_in_both_libraries_and_keeps_the_rest(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "peers.json"
    previous = {"command": "earlier", "memory": [{"family": "gru"}],
                "threads": {"1": {"threads": 1, "training": [], "generation": None}}}
    out.write_text(json.dumps(previous))
    peers.main(["--parts", "peak", "--threads", "1", "--rounds", "1", "--peak-size", "64",
                "--min-block-seconds", "0.01", "--keep-other-parts", "--out", str(out)])
    result = json.loads(out.read_text())
    peak = result["threads"]["1"]["gemm_peak"]
    assert peak["size"] == 64 and all(rate["median"] > 0 for rate in peak["gflops_per_s"].values())
    assert set(peak["gflops_per_s"]) == {"tensorflow", "pytorch"} and result["memory"] == [{"family": "gru"}]
    assert result["parts_measured_by"]["peak"]["command"].endswith("--out " + str(out))


def _verdict(met):
    return {"bar": 1.0, "value": 1.1 if met else 0.9, "met": met}


def test_a_part_run_alone_keeps_the_other_parts_of_the_file_and_says_who_measured_each():
    previous = {
        "command": "python -m benchmarks.peers --rounds 3", "machine": {"cpu": "AMD EPYC"},
        "threads": {"1": {"threads": 1, "training": [{"family": "gru", "batch": 2, "units": 8,
                                                       "bars": {"zoo/pytorch": _verdict(False)}}],
                          "generation": {"rows": [{"batch": 1, "bars": {"one": _verdict(False)}}]}}},
        "memory": [{"family": "gru"}],
    }
    now = {"command": "python -m benchmarks.peers --parts generation", "memory": [],
           "threads": {"1": {"threads": 1, "training": [], "generation": {"rows": [{"batch": 1,
                                                                                   "bars": {"one": _verdict(True)}}]}}},
           "parts_measured_by": {"generation": {"command": "python -m benchmarks.peers --parts generation"}}}
    merged = peers.with_parts_of(previous, now, ["generation"])
    assert merged["threads"]["1"]["training"] == previous["threads"]["1"]["training"]
    assert merged["threads"]["1"]["generation"]["rows"][0]["bars"]["one"]["met"]
    assert merged["memory"] == [{"family": "gru"}]
    # The kept part names the machine it ran on, which the merged file's own `machine` no longer is.
    assert merged["parts_measured_by"]["training"] == {
        "cpu": "AMD EPYC", "command": "python -m benchmarks.peers --rounds 3"}
    assert merged["parts_measured_by"]["generation"]["command"].endswith("--parts generation")
    assert merged["bar_summary"]["judged"] == 2 and merged["bar_summary"]["met"] == 1  # counted over both parts


@pytest.mark.slow
def test_the_xla_step_is_timed_against_todays_and_lands_near_it(tmp_path):
    from benchmarks.xla_step import measure

    row = measure("elman", 4, 8, rounds=2, calls=1, run_dir=tmp_path)
    assert set(row["step_ms"]) == {"plain", "xla"} and all(t > 0 for t in row["step_ms"].values())
    assert row["speedup"]["min"] <= row["speedup"]["median"] <= row["speedup"]["max"]
    assert 0 <= row["weights_max_abs_difference_after_one_step"] < 1e-5  # float32 rounding, not another result


def test_each_xla_setting_reaches_its_worker_and_is_summarized_against_the_default(monkeypatch):
    from benchmarks import xla_flags

    seen = []

    def fake_run(command, check, cwd, env):  # the worker's process: records its flags, "measures" a rate from them
        seen.append(env.get("XLA_FLAGS"))
        spec = json.loads(command[command.index("--worker") + 1])
        rate = 2000.0 if env["XLA_FLAGS"] else 1000.0
        rows = [{"family": family, "batch": batch, "units": units, "xla": {"zoo": True},
                 "tokens_per_s": {"zoo": {"median": rate}},
                 "ratios": {name: {"wall": {"median": rate / 1000}} for name in xla_flags.RATIOS}}
                for family, batch, units in spec["shapes"]]
        with open(command[command.index("--worker-out") + 1], "w") as out:
            json.dump({"training": rows}, out)

    monkeypatch.setattr(peers.subprocess, "run", fake_run)
    monkeypatch.setenv("XLA_FLAGS", "--set_by_the_user")
    shapes = ((2, "lstm", 32, 128), (1, "gru", 128, 512))
    rounds = [{setting: xla_flags.measure(setting, shapes, 1, 0.1) for setting in ("default", "XNNPACK dots")}
              for _ in range(2)]
    # one worker per thread count; the default runs without the user's flags, every other setting with its own
    assert seen == ["", "", xla_flags.SETTINGS["XNNPACK dots"], xla_flags.SETTINGS["XNNPACK dots"]] * 2
    summary = xla_flags.summarize(rounds)
    assert set(summary["XNNPACK dots"]) == {"2 lstm 32x128", "1 gru 128x512"}
    figures = summary["XNNPACK dots"]["2 lstm 32x128"]
    assert figures["zoo_over_default"]["median"] == pytest.approx(2.0)
    assert figures["zoo/pytorch"] == {"median": 2.0, "min": 2.0, "max": 2.0} and figures["xla"] is True
    assert summary["default"]["1 gru 128x512"]["zoo_over_default"]["median"] == pytest.approx(1.0)
