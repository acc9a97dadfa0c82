#!/usr/bin/env python3
"""The two measurements behind ``python -m bench e2e`` and ``python -m bench e2e-rows``.

  cli TIMES -- ARGS...   charlm's command line with ARGS (e.g. ``eval VALID --model M``), as
                         ``python -m charlm ARGS`` runs it, writing to TIMES (JSON) how long its
                         validation pass took (``charlm.tasks.lm.evaluate``, the function
                         training's validation runs) and how many tokens it scored
  rows MODEL CORPUS      the validation loss of a char model on the last 10 % of CORPUS (the
                         split training makes) with 32 rows, with 1 row (the exact single
                         stream) and with 32 rows warmed up as torch_quality.py warms them

What each side's time is, in ``python -m bench e2e`` (bench/lm_jobs.py runs it):

* charlm, "pass": ``charlm.tasks.lm.evaluate(model, ids, m, T)`` with the model's recorded
  ``eval_batch`` rows and ``bptt`` window, timed inside the ``charlm eval`` process (the
  command calls that very function; ``cli`` only puts a clock round it).
* charlm, "eval command": the wall-clock time of the whole ``charlm eval VALID --model M
  --json`` process, from before the process is started to its exit: interpreter start,
  imports, reading the model and the file, encoding and the pass.
* PyTorch: torch_quality.py's own ``evaluate`` (its ``eval_s``, timed by the script round
  that one call), in a run with ``--budget-seconds 0``: one training step, then exactly one
  validation pass, which is the figure kept. Process start, data loading and the one step
  are outside it. The script's evaluation scores the same text as --eval-rows 32 rows, each
  row after the first first run over the 256 tokens before it (burn-in, not scored).

Each side runs on the same cores with the same thread count, alternately (charlm, PyTorch,
charlm, PyTorch, ...), one run at a time, and the medians are reported. (Running the two
recipes at once, one per core, was tried and dropped: a run took up to 25 % less time once the
other core's recipe had finished.) Speed ratio = PyTorch's seconds / charlm's (above 1:
charlm is faster).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


# --------------------------------------------------------------------- cli: timed charlm
def cli(times_path: str, args: list[str]) -> None:
    """Run charlm's command line as ``python -m charlm`` would, recording the pass times."""
    import charlm.use.language_model as lm
    from charlm.cli import main

    times = {"pass_s": 0.0, "passes": 0, "tokens": 0}
    evaluate = lm.evaluate

    def timed_evaluate(*a, **k):
        t0 = time.perf_counter()
        r = evaluate(*a, **k)
        times["pass_s"] += time.perf_counter() - t0
        times["passes"] += 1
        times["tokens"] += r[1]
        return r

    lm.evaluate = timed_evaluate
    sys.argv = ["charlm", *args]
    try:
        main()
    finally:
        Path(times_path).write_text(json.dumps(times))


# --------------------------------------------------------------------- rows: the convention
def rows(model_path: str, corpus: str, burnin: int = 256) -> None:
    """Validation loss of one model, three ways, on the validation part training uses."""
    import numpy as np

    from charlm.tasks.lm import evaluate
    from charlm.tasks.stream import Batches, split_validation
    from charlm.text.vocab import sequence_chunks
    from charlm.training import checkpoint

    model, meta, _ = checkpoint.load(model_path)
    cfg = meta.get("config") or {}
    text = Path(corpus).read_text(encoding="utf-8")
    _, valid = split_validation(text, float(cfg.get("valid_fraction", 0.1)))
    ids = model.vocab.encode_chunks(sequence_chunks(valid, prose=bool(cfg.get("prose", False)),
                                                    level=model.vocab.level))
    T = int(cfg.get("bptt", 128))
    out = {"type": "rows", "model": model_path, "valid_tokens": int(len(ids)), "bptt": T}
    for m in (32, 1):
        t0 = time.perf_counter()
        nll, n = evaluate(model, ids, m, T)
        out[f"nll_{m}_rows"], out[f"tokens_{m}_rows"] = nll, n
        out[f"seconds_{m}_rows"] = round(time.perf_counter() - t0, 2)
    # 32 rows as evaluate lays them out, but each row after the first starts from the state
    # reached over the `burnin` tokens before its first input (not scored): the convention of
    # torch_quality.py, with charlm's own rows and windows.
    m = 32
    b = Batches.from_stream(ids, m, T)
    n = b.steps_per_row
    s = np.concatenate([[0], ids[: m * n]])          # the stream evaluate reads (EOS first)
    W = np.zeros((burnin, m), dtype=ids.dtype)
    for r in range(1, m):
        W[:, r] = s[r * n - burnin: r * n]
    _, warm = model.infer(W, model.zero_state(m))
    state = []
    for layer in warm:                                # row 0 starts the stream: zero state
        arrays = [a.copy() for a in (layer if isinstance(layer, tuple) else (layer,))]
        for a in arrays:
            a[0] = 0.0                                # state arrays are (m, n_a)
        state.append(tuple(arrays) if isinstance(layer, tuple) else arrays[0])
    total = 0.0
    for k in range(len(b)):
        X, Y = b.window(k)
        logp, state = model.target_log_probs(X, Y, state)
        total -= float(logp.sum())
    out["nll_32_rows_burnin"] = total / b.tokens
    out["burnin"] = burnin
    out["diff_32_minus_1"] = out["nll_32_rows"] - out["nll_1_rows"]
    out["diff_32burnin_minus_1"] = out["nll_32_rows_burnin"] - out["nll_1_rows"]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "cli" and len(sys.argv) >= 4 and sys.argv[3] == "--":
        cli(sys.argv[2], sys.argv[4:])
    elif mode == "rows" and len(sys.argv) == 4:
        rows(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: e2e_eval.py cli TIMES -- ARGS... | rows MODEL CORPUS")
