#!/usr/bin/env bash
# Interleaved A/B on a small machine: one process with 2 BLAS threads (A) against 2 MPI ranks
# of 1 BLAS thread each (B), the same global batch, for C1 and C2 (LSTM); ROUNDS rounds of
# A B per config; prints each run's JSON line and then the medians (tokens/s, all-reduce share).
#   usage: bench/mpi_ab.sh            env: ROUNDS (3), PY (python3), MPIEXEC (mpiexec),
#                                          STEPS_C1 (15), STEPS_C2 (4), WARMUP (2), CONFIGS ("C1 C2")
# About 2 minutes on a 2-core machine with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
MPIEXEC=${MPIEXEC:-mpiexec}
ROUNDS=${ROUNDS:-3}
STEPS_C1=${STEPS_C1:-15}
STEPS_C2=${STEPS_C2:-4}
WARMUP=${WARMUP:-2}
CONFIGS=${CONFIGS:-"C1 C2"}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LINES=$(mktemp)
for r in $(seq "$ROUNDS"); do
  for cfg in $CONFIGS; do
    steps=$STEPS_C1; [ "$cfg" = C2 ] && steps=$STEPS_C2
    args=(bench/mpi_train.py --config "$cfg" --steps "$steps" --warmup "$WARMUP")
    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 "$PY" "${args[@]}" \
      --label "1 process x 2 threads" | tee -a "$LINES"
    "$MPIEXEC" -n 2 "$PY" "${args[@]}" --label "2 ranks x 1 thread" | tee -a "$LINES"
  done
done
"$PY" - "$LINES" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'config':6} {'run':24} {'n':>2} {'tokens/s (median)':>18} {'all-reduce ms':>14} {'share':>6}")
for cfg in dict.fromkeys(r["config"] for r in rows):
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["config"] == cfg and r["label"] == label]
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"{cfg:6} {label:24} {len(rs):>2} {med('tokens_per_s'):>18,.0f} "
              f"{med('allreduce_ms'):>14.2f} {med('allreduce_share'):>6.1%}")
PYEOF
rm -f "$LINES"
