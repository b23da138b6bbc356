"""README.md and BENCHMARKS.md quote their tables from `benchmarks/results/*.json` (`benchmarks.tables`)."""

import json
import shutil

import pytest

from benchmarks import tables


def test_docs_agree_with_the_results_files():
    assert tables.stale() == [], "a results file changed without its tables: run python -m benchmarks.tables --write"


def test_every_table_is_placed_exactly_once():
    text = "".join((tables.ROOT / doc).read_text() for doc in tables.DOCS)
    assert sorted(tables.BEGIN.findall(text)) == sorted(tables.TABLES)
    assert text.count(tables.END) == len(tables.TABLES)


def test_a_changed_results_file_makes_its_doc_stale(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(tables.RESULTS, results)
    streaming = json.loads((results / "streaming.json").read_text())
    streaming["rows"][0]["chars_per_s"] += 100.0
    (results / "streaming.json").write_text(json.dumps(streaming))
    text = (tables.ROOT / "BENCHMARKS.md").read_text()
    assert tables.update(text) == text
    assert tables.update(text, results) != text


def test_the_jaeger_table_refuses_per_seed_figures_that_are_not_the_quality_run(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(tables.RESULTS, results)
    seeds = json.loads((results / "esn_jaeger_test_seeds.json").read_text())
    seeds["test_seeds"]["median_seeds_0_9"] *= 1.5  # another run's seeds 0-9
    (results / "esn_jaeger_test_seeds.json").write_text(json.dumps(seeds))
    with pytest.raises(ValueError, match="esn_jaeger_test_seeds.json and quality.json disagree on seeds 0-9"):
        tables.render("esn_jaeger_test", results)


def test_update_replaces_only_what_is_between_the_markers():
    text = "before\n<!-- table: streaming -->\nold | rows\n<!-- end table -->\nafter\n"
    expected = f"before\n<!-- table: streaming -->\n\n{tables.render('streaming')}\n\n<!-- end table -->\nafter\n"
    assert tables.update(text) == expected
    assert tables.update(expected) == expected


def test_two_digit_figures():
    assert [tables._short(x) for x in (0.6752, 0.0092320, 0.00044737, 0.0016385)] == ["0.68", "9.2e-3", "4.5e-4",
                                                                                      "1.6e-3"]
    assert [tables._g(x) for x in (1e-08, 1e-12, 2.5e-9, 0.3)] == ["1e-8", "1e-12", "2.5e-9", "0.3"]


def test_unknown_table_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"`name` must be one of \[.*'streaming'.*\]. Received: name='stream'"):
        tables.update("<!-- table: stream -->\n<!-- end table -->\n")


@pytest.mark.parametrize(
    "text",
    [
        "<!-- table: streaming -->\n| a |\n",
        "<!-- table: streaming -->\n<!-- table: serving_load -->\n<!-- end table -->\n",
    ],
    ids=["no end", "next table before the end"],
)
def test_a_table_without_its_end_marker_is_refused(text):
    with pytest.raises(ValueError, match="`<!-- table: streaming -->` has no `<!-- end table -->` after it"):
        tables.update(text)


def test_the_cpu_bound_ratio_spreads_a_runs_cpu_over_the_cores():
    # 3 CPU-seconds on 2 cores: at best 1.5 s for 32,000 characters, 21,333/s, a third of the in-process 64,000/s.
    run = {"characters": 32_000, "server_cpu_s": 2.0, "clients_cpu_s": 1.0, "in_process_chars_per_s": 64_000.0}
    assert tables.cpu_bound_ratio(run, cores=2) == pytest.approx(1 / 3)
    assert tables.cpu_bound_ratio(run, cores=1) == pytest.approx(1 / 6)
