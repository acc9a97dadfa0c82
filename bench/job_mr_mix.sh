#!/usr/bin/env bash
# Measurement job 2 of issue 12: MR 10-fold cross-validation, same folds and per-fold budget as
# bench/job_mr_charlm.sh (default 12 s): a char-level bidirectional LSTM in charlm, then the
# word-level bidirectional LSTM in PyTorch (bench/torch_classifier.py: same data code, folds,
# vocabulary, batches and validation schedule), to set beside job 1's charlm word-level
# bidirectional run. About 5-6 minutes on 2 cores.
#
#   CORPORA=/path/to/corpora OUT=/path/to/out bash bench/job_mr_mix.sh
#
# Env: BUDGET_SCALE, MAX_FOLDS as in job_mr_charlm.sh. Output: $OUT/mr_mix.jsonl.
set -euo pipefail
: "${CORPORA:?set CORPORA to the corpora folder}" "${OUT:?set OUT to the output folder}"
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2
BUDGET=$(python3 -c "print(12 * float('${BUDGET_SCALE:-1}'))")
MR="$CORPORA/classify/mr"
DATA=(--class "pos=$MR/rt-polarity.pos" --class "neg=$MR/rt-polarity.neg")
RUN=(--layers 1 --dropout 0.5 --lr 5e-3 --batch 32 --eval-every 100 --folds 10
     --max-folds "${MAX_FOLDS:-0}" --budget "$BUDGET" --seed 1234 --bidirectional)
# Each of the two runs is cut off after CAP seconds (folds print as they finish, so a cut-off
# run still leaves its finished folds; the summary line is then missing).
CAP=$(python3 -c "print(int(200 * max(float('${BUDGET_SCALE:-1}'), 0.3)))")
mkdir -p "$OUT"
: > "$OUT/mr_mix.jsonl"
timeout "$CAP" python3 "$HERE/charlm_cv.py" "${DATA[@]}" --level char --embed 16 --hidden 64 "${RUN[@]}" \
  | tee -a "$OUT/mr_mix.jsonl" \
  || echo '{"cut_off": true}' | tee -a "$OUT/mr_mix.jsonl"
timeout "$CAP" python3 "$HERE/torch_classifier.py" "${DATA[@]}" --level word --embed 64 --hidden 64 \
  "${RUN[@]}" | tee -a "$OUT/mr_mix.jsonl" \
  || echo '{"cut_off": true}' | tee -a "$OUT/mr_mix.jsonl"
