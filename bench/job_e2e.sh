#!/usr/bin/env bash
# Evaluation end to end, as users see it (issue 15): for the README's two "Quality in a fixed
# time" recipes (tiny Shakespeare char 2x512 LSTM, embedding 64, eval batch 32, bptt 128, the
# last 10 % as validation; WikiText-2 word 2x200 LSTM, embedding 200, vocabulary 10,000,
# --tokenizer whitespace, batch 20, bptt 35, its valid file), the time of
#   - charlm's validation pass (charlm.train.evaluate, what training's validation runs),
#   - the whole `charlm eval VALID --model M --json` command, process start included,
#   - torch_quality.py's own evaluation of a PyTorch model of the same size on the same text,
# alternately (charlm, PyTorch) REPEATS times, medians. Details: bench/e2e_eval.py.
#
# One run at a time. THREADS="1" (default): one thread per side, pinned to core 0 (about 4
# minutes on the project's 2-core machine). THREADS="2": two threads on cores 0 and 1 (about
# 3 minutes); THREADS="1 2" runs both. The models are one training step from
# initialisation unless CHAR_MODEL / WORD_MODEL name model files (the time does not depend on
# the weights).
#
# Reads $CORPORA (tinyshakespeare.txt, wikitext-2/) and $TORCH_QUALITY (default
# $CORPORA/../bench/torch_quality.py); writes $OUT/e2e.jsonl (one line per recipe and thread
# count) and prints a table. PY runs charlm, TORCH_PY runs PyTorch [both: python3].
set -euo pipefail
: "${CORPORA:?set CORPORA to the corpora folder}"
: "${OUT:?set OUT to the results folder}"
cd "$(dirname "$0")/.."
export CORPORA OUT
export PY=${PY:-python3}
export TORCH_PY=${TORCH_PY:-$PY}
export TORCH_QUALITY=${TORCH_QUALITY:-$CORPORA/../bench/torch_quality.py}
export REPEATS=${REPEATS:-3} THREADS=${THREADS:-1}
WORK=$(mktemp -d)
export WORK
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
PYTHONPATH="$PWD" "$PY" bench/e2e_eval.py run
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
echo "job: $(( $(date +%s) - START )) s, commit $COMMIT"
