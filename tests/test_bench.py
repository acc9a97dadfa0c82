"""charlm bench: the FLOP counts, which rows it measures, and what it reports."""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from charlm.cli import app
from charlm.use.bench import CONFIGS, default_plan, flops_per_token, run_worker


def timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def config_flops(name: str, cell: str, mode: str = "train") -> float:
    c = CONFIGS[name]
    return flops_per_token(cell, c["vocab"], c["embed"], c["hidden"], c["layers"], mode)


@pytest.mark.parametrize("name,mflops", [("C1", 5.21), ("C2", 20.65), ("W1", 15.84)])
def test_lstm_flops_match_the_reference_tables_figures(name, mflops):
    # MFLOP per trained token as the shared reference benchmark's table gives them
    assert config_flops(name, "lstm") / 1e6 == pytest.approx(mflops, abs=0.005)


def test_flops_by_hand_for_a_tiny_one_hot_rnn_and_a_gru():
    # one-hot RNN, V 5, H 3: layer 2*1*3*(5+3) = 48, output 2*3*5 = 30; training is 3 forwards
    assert flops_per_token("rnn", 5, 0, 3, 1, "eval") == 78
    assert flops_per_token("rnn", 5, 0, 3, 1, "train") == 234
    # GRU, V 7, E 2, H 4, two layers: 2*3*4*(2+4) = 144, 2*3*4*(4+4) = 192, output 2*4*7 = 56
    assert flops_per_token("gru", 7, 2, 4, 2, "generate") == 144 + 192 + 56


def rows(plan):
    return {(p["config"], p["cell"], p["mode"]) for p in plan}


def test_the_default_plan_is_the_reference_tables_rows():
    got = rows(default_plan(list(CONFIGS)))
    want = {("C1", c, m) for c in ("rnn", "gru", "lstm") for m in ("train", "eval", "generate")}
    want |= {("C2", "lstm", "train"), ("C2", "lstm", "generate")}
    want |= {("W1", "lstm", m) for m in ("train", "eval", "generate")}
    want |= {("MC", "rnn", "train"), ("MC", "rnn", "generate")}
    assert got == want


def test_cells_asked_for_run_on_every_config_and_mc_only_as_an_rnn():
    assert rows(default_plan(["C2", "W1"], ["gru"], ["train"])) == {
        ("C2", "gru", "train"), ("W1", "gru", "train")}
    assert default_plan(["MC"], ["lstm"]) == []
    assert rows(default_plan(["MC"], ["rnn", "lstm"], ["eval"])) == {("MC", "rnn", "eval")}


def test_the_worker_reports_consistent_figures():
    steps = 3
    spec = {"config": "MC", "cell": "rnn", "mode": "train", "steps": steps, "warmup": 1}
    t = time.perf_counter()
    r = run_worker(spec)
    elapsed = time.perf_counter() - t
    c = CONFIGS["MC"]
    # one-hot RNN 100 over V 65, trained: 3 x (2*100*(65+100) + 2*100*65)
    assert r["flops_per_token"] == config_flops("MC", "rnn") == 3 * (2 * 100 * 165 + 2 * 100 * 65)
    # the median step time, against the clock outside: at least half of the timed steps took
    # that long or longer, and all of them ran inside the call
    step_s = c["batch"] * c["bptt"] / r["tokens_per_s"]
    assert math.ceil(steps / 2) * step_s <= elapsed


def test_cli_json_rows_and_fraction_of_peak():
    res = CliRunner().invoke(app, ["bench", "--config", "MC", "--mode", "generate",
                                   "--steps", "1", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [(r["config"], r["cell"], r["mode"]) for r in lines] == [("MC", "rnn", "generate")]
    r = lines[0]
    assert r["flops_per_token"] == config_flops("MC", "rnn", "generate")
    # the peak it reports against a 1024x1024 float32 product timed here, within a factor of
    # 3: the fastest of a second's worth, as the bench takes its own, so that other work on
    # the machine in some moments does not decide the comparison
    a = np.ones((1024, 1024), dtype=np.float32)
    best, end = float("inf"), time.perf_counter() + 1.0
    while time.perf_counter() < end:
        best = min(best, timed(lambda: a @ a))
    assert 1 / 3 < r["peak_sgemm_gflops"] / (2 * 1024 ** 3 / best / 1e9) < 3


@pytest.mark.parametrize("args,message", [
    (["--config", "C3"], "Unknown --config 'C3'"),
    (["--cell", "transformer"], "Unknown --cell 'transformer'"),
    (["--mode", "fit"], "Unknown --mode 'fit'"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--config", "MC", "--cell", "gru"], "Nothing to measure"),
])
def test_bad_bench_options_are_one_line_errors(args, message):
    res = CliRunner().invoke(app, ["bench", *args])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0]


def test_the_machine_it_ran_on_is_in_the_json_and_the_table():
    res = CliRunner().invoke(app, ["bench", "--config", "MC", "--mode", "generate",
                                   "--steps", "1", "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][0])["machine"]
    assert m["numpy"] == np.__version__
    assert m["cores"] == os.cpu_count() and 1 <= m["cores_usable"] <= m["cores"]
    try:
        cpuinfo = open("/proc/cpuinfo").read()
    except OSError:
        cpuinfo = ""
    names = re.findall(r"^model name\s*:\s*(.+?)\s*$", cpuinfo, re.M)
    if names:
        assert m["cpu"] == names[0]
    if m["blas_kernel"] is not None:
        # the kernel OpenBLAS chose here is also in its run-time configuration string
        lib = next(p for p in sorted({ln.split()[-1] for ln in open("/proc/self/maps")
                                      if "openblas" in ln.lower()}) if p.startswith("/"))
        lib = ctypes.CDLL(lib)
        get = next(getattr(lib, n) for n in ("scipy_openblas_get_config64_",
                                             "scipy_openblas_get_config", "openblas_get_config64_",
                                             "openblas_get_config") if hasattr(lib, n))
        get.restype = ctypes.c_char_p
        assert f" {m['blas_kernel']} " in get().decode()
    table = CliRunner().invoke(app, ["bench", "--config", "MC", "--mode", "generate",
                                     "--steps", "1"])
    assert table.exit_code == 0, table.output
    assert m["cpu"] in table.stdout and f"NumPy {np.__version__}" in table.stdout
