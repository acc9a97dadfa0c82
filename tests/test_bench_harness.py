"""The benchmark harness (python -m bench): its registry covers every script in bench/, its
command line keeps a script's own options apart from the common ones, and its one summary
printer writes the tables the documents carry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                  # bench/ is not installed with charlm
from bench.__main__ import parse  # noqa: E402
from bench.harness import Col, markdown_table  # noqa: E402
from bench.jobs import BY_NAME, JOBS  # noqa: E402

# bench/ modules that are the harness itself or shared by scripts, not jobs of their own
NOT_JOBS = {"__init__.py", "__main__.py", "harness.py", "jobs.py", "lm_jobs.py", "task_jobs.py",
            "longrange.py", "mpi_jobs.py", "protocol.py"}


def test_every_script_in_bench_is_a_job():
    scripts = {p.name for p in (ROOT / "bench").glob("*.py")} - NOT_JOBS
    registered = {j.script.split()[0] for j in JOBS if j.script}
    assert scripts - registered == set()
    assert len(BY_NAME) == len(JOBS)          # no name twice


def test_a_script_job_gets_its_own_options_untouched():
    # --threads is the harness's option before the name and torch_tagger.py's own after it
    job, a = parse(["--cores", "0", "--threads", "1", "torch-tagger", "--threads", "2",
                    "--out", "x"])
    assert job.script == "torch_tagger.py"
    assert (a.cores, a.threads, a.args) == ("0", 1, ["--threads", "2", "--out", "x"])


def test_a_job_takes_the_common_options_before_or_after_its_name():
    _, a = parse(["--scale", "0.5", "charfeat", "--data", "btc", "--cores", "1"])
    assert (a.scale, a.data, a.cores, a.threads) == (0.5, "btc", "1", None)
    with pytest.raises(SystemExit):
        parse(["charfeat", "--data", "conll2003"])


def test_the_summary_printer_writes_a_markdown_table():
    rows = [{"name": "btc-bi", "f1": 0.6575, "steps": 2538},
            {"name": "wnut17-bi", "steps": 2830}]          # no f1: a blank cell
    cols = [Col("run", lambda r: r["name"], left=True),
            Col("entity F1", lambda r: f"{100 * r['f1']:.2f}"),
            Col("steps", lambda r: f"{r['steps']:,}")]
    assert markdown_table(rows, cols) == ["| run | entity F1 | steps |",
                                          "|---|---:|---:|",
                                          "| btc-bi | 65.75 | 2,538 |",
                                          "| wnut17-bi |  | 2,830 |"]
