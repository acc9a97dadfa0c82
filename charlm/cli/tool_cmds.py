"""``charlm gradcheck`` and ``charlm bench``: checking and measuring this machine."""

from __future__ import annotations

import sys
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table
from rich.text import Text
from tqdm import tqdm

from ..errors import ConfigError
from ..use.bench import (
    CELLS,
    CONFIGS,
    MODES,
    default_plan,
    describe_machine,
    machine_info,
    measure,
    sgemm_peak,
)
from ..use.gradcheck import ATOL, FLOOR, TOLERANCE, run_all
from ..version import __version__
from .common import app, emit_json, guarded, live_progress, out


# -------------------------------------------------------------------- gradcheck
@app.command()
@guarded
def gradcheck(
    seed: int = typer.Option(0, "--seed", help="Seed of the random shapes and values."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per check."),
):
    """Check every cell's backward pass against numerical gradients (float64)."""

    results = list(run_all(seed))
    failed = [r for r in results if not r.passed]
    if as_json:
        for r in results:
            emit_json({"component": r.component, "param": r.param,
                       "max_rel_error": r.raw_rel_error, "max_abs_error": r.max_abs_error,
                       "checked_error": r.max_rel_error, "tolerance": TOLERANCE,
                       "atol": ATOL, "passed": r.passed})
    else:
        table = Table(title="gradient checks (float64, five-point centred differences)",
                      show_edge=False, pad_edge=False)
        for col in ("component", "parameter", "rel. error", "abs. err", "tol.", "result"):
            table.add_column(col, justify="left" if col in ("component", "parameter",
                                                            "result") else "right")
        for r in results:
            table.add_row(r.component, r.param, f"{r.raw_rel_error:.2e}",
                          f"{r.max_abs_error:.1e}", f"{TOLERANCE:g}",
                          Text("pass", style="green") if r.passed else
                          Text("FAIL", style="bold red"))
        out.print(table)
        out.print(f"rel. error = max |a-n| / max(|a|+|n|, {FLOOR:g}·max|n|); a analytic, "
                  "n numerical.")
        out.print(f"pass: every element has |a-n| < tolerance·max(|a|+|n|, {FLOOR:g}·max|n|)"
                  f" + {ATOL:g}.")
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


# ------------------------------------------------------------------------ bench
@app.command()
@guarded
def bench(
    config: Optional[List[str]] = typer.Option(
        None, "--config", metavar="<C1|C2|W1|MC>",
        help="C1 (char 2×256), C2 (char 2×512), W1 (word 10k, 2×200), MC (min-char-rnn) "
             "[default: all]."),
    cell: Optional[List[str]] = typer.Option(
        None, "--cell", metavar="<rnn|gru|lstm>",
        help="rnn, gru, lstm, on every config [default: all on C1, lstm on C2 and W1]."),
    mode: Optional[List[str]] = typer.Option(
        None, "--mode", metavar="<train|eval|generate>",
        help="train, eval, generate [default: all; no eval on C2 and MC]."),
    steps: int = typer.Option(20, "--steps", help="Timed steps per train or eval measurement "
                                                   "(median); generation times 2,000 tokens."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per measurement."),
):
    """Throughput of this machine: train / eval / generate tokens per second.

    Each row runs in a fresh process on random token ids of its config's vocabulary (float32,
    no dropout, clip 5, Adam; MC: Adagrad). It reports tokens per second (the median step for
    train and eval; for generation, 2,000 tokens at batch 1, one call each, draw included),
    the GFLOP/s that makes (matrix products, counted analytically), its share of NumPy's
    float32 matrix-product peak measured here, and the process's peak memory. Run it on a
    quiet machine; compare ratios, not single runs.
    """

    configs = config or list(CONFIGS)
    for name, allowed, opts in (("--config", CONFIGS, configs),
                                ("--cell", CELLS, cell or []),
                                ("--mode", MODES, mode or [])):
        bad = [o for o in opts if o not in allowed]
        if bad:
            raise ConfigError(f"Unknown {name} {bad[0]!r}. Use one of: {', '.join(allowed)}.")
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1 (got {steps}).")
    plan = default_plan(configs, cell or None, mode or None)
    if not plan:
        raise ConfigError("Nothing to measure: MC (min-char-rnn) is an RNN; add --cell rnn.")
    machine = machine_info()
    peak = sgemm_peak()
    results = []
    for spec in tqdm(plan, desc="bench", unit="run", file=sys.stderr, leave=False,
                     disable=not live_progress()):
        r = measure({**spec, "steps": steps})
        r["pct_of_peak"] = 100.0 * r["gflops"] / peak
        r["peak_sgemm_gflops"] = peak
        r["machine"] = machine
        results.append(r)
        if as_json:
            emit_json(r)
    if as_json:
        return
    table = Table(title=f"charlm {__version__} throughput (NumPy {np.__version__}, float32 "
                        f"matmul peak {peak:.0f} GFLOP/s)", show_edge=False)
    for col in ("config", "cell", "mode", "tokens/s", "GFLOP/s", "% of peak", "peak RSS"):
        table.add_column(col, justify="left" if col in ("config", "cell", "mode") else "right")
    for r in results:
        table.add_row(r["config"], r["cell"], r["mode"], f"{r['tokens_per_s']:,.0f}",
                      f"{r['gflops']:.1f}", f"{r['pct_of_peak']:.0f}%",
                      f"{r['peak_rss_mb']:.0f} MB")
    out.print(table)
    out.print(f"machine: {describe_machine(machine)}")
