#!/usr/bin/env bash
# Measurement job 1 of issue 12: sentence polarity (MR), 10-fold stratified cross-validation,
# word-level LSTM classifiers in charlm, unidirectional then bidirectional, each fold trained for
# a fixed wall-clock budget (default 12 s; validation passes count in it); then the interleaved
# throughput of the bidirectional model in charlm and in PyTorch (bench/classify_speed.py,
# 3 rounds of 5 s each). About 5.5 minutes on 2 cores: 2 x 10 folds x (12 s + ~2 s of
# evaluation and set-up) + 40 s.
#
#   CORPORA=/path/to/corpora OUT=/path/to/out bash bench/job_mr_charlm.sh
#
# Env: BUDGET_SCALE (default 1) multiplies the per-fold budget; MAX_FOLDS (default 0 = all 10)
# runs only the first N folds (quick checks). Output: JSON lines, one per fold and one summary
# per model (mean and sd of held-out accuracy, sentences/s), then the speed lines, in
# $OUT/mr_charlm.jsonl.
set -euo pipefail
: "${CORPORA:?set CORPORA to the corpora folder}" "${OUT:?set OUT to the output folder}"
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2
BUDGET=$(python3 -c "print(12 * float('${BUDGET_SCALE:-1}'))")
MR="$CORPORA/classify/mr"
ARGS=(--class "pos=$MR/rt-polarity.pos" --class "neg=$MR/rt-polarity.neg" --level word
      --embed 64 --hidden 64 --layers 1 --dropout 0.5 --lr 5e-3 --batch 32
      --eval-every 100 --folds 10 --max-folds "${MAX_FOLDS:-0}" --budget "$BUDGET" --seed 1234)
# Each of the two runs is cut off after CAP seconds (folds print as they finish, so a cut-off
# run still leaves its finished folds; the summary line is then missing).
CAP=$(python3 -c "print(int(175 * max(float('${BUDGET_SCALE:-1}'), 0.3)))")
mkdir -p "$OUT"
: > "$OUT/mr_charlm.jsonl"
timeout "$CAP" python3 "$HERE/charlm_cv.py" "${ARGS[@]}" | tee -a "$OUT/mr_charlm.jsonl" \
  || echo '{"cut_off": true}' | tee -a "$OUT/mr_charlm.jsonl"
timeout "$CAP" python3 "$HERE/charlm_cv.py" "${ARGS[@]}" --bidirectional | tee -a "$OUT/mr_charlm.jsonl" \
  || echo '{"cut_off": true}' | tee -a "$OUT/mr_charlm.jsonl"
timeout 55 python3 "$HERE/classify_speed.py" --class "pos=$MR/rt-polarity.pos" \
  --class "neg=$MR/rt-polarity.neg" --level word --embed 64 --hidden 64 --bidirectional \
  --lr 5e-3 --batch 32 --rounds 3 --seconds "$(python3 -c "print(5 * float('${BUDGET_SCALE:-1}'))")" \
  | tee -a "$OUT/mr_charlm.jsonl" || echo '{"cut_off": true}' | tee -a "$OUT/mr_charlm.jsonl"
