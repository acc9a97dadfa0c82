#!/usr/bin/env bash
# Data-parallel scaling of `charlm train` over MPI on a many-core machine (16 cores or more):
# training tokens/s of the C1 and C2 LSTMs with 1 process × 1 and × 2 BLAS threads, and with
# 2, 4, 8 ranks of one BLAS thread each, (a) with the config's global batch split over the
# ranks (strong scaling) and (b) with the config's batch on every rank (weak scaling); the
# all-reduce's share of a step. Prints a table; writes mpi_scaling.jsonl and mpi_scaling.txt
# to $OUT (default ./bench-out). About 90 s on a 16-core x86 server; STEPS_C1 / STEPS_C2 scale
# it. Needs python3 with NumPy; MPI comes from mpiexec + mpi4py if present, else from the
# wheels in .whl/ (mpich and mpi4py for this Python: see the README, "Data-parallel training").
#   usage: bench/mpi_scaling.sh            (from the repository root or anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
PY=${PY:-python3}
STEPS_C1=${STEPS_C1:-6}
STEPS_C2=${STEPS_C2:-3}
RANKS=${RANKS:-"2 4 8"}
CONFIGS=${CONFIGS:-"C1 C2"}
WHEELS=${WHEELS:-.whl}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! command -v mpiexec >/dev/null 2>&1 || ! "$PY" -c "import mpi4py.MPI" >/dev/null 2>&1; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "No mpiexec with mpi4py here, and no wheels in $WHEELS/ to install them from." >&2
    exit 1
  fi
  # --prefix keeps the MPI wheel's bin/ (mpiexec) and lib/ (libmpi) together
  PREFIX=/tmp/charlm-mpi
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --prefix "$PREFIX" "$WHEELS"/*.whl
  SITE=$(ls -d "$PREFIX"/lib/python3*/site-packages)
  export PATH="$PREFIX/bin:$PATH" PYTHONPATH="$SITE:$PYTHONPATH"
  export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "mpiexec: $(command -v mpiexec); $("$PY" -c 'from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])')" >&2

# one process on one core, or on two (taskset where the machine has it)
pin() { if command -v taskset >/dev/null 2>&1; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
JSONL="$OUT/mpi_scaling.jsonl"
: > "$JSONL"
for cfg in $CONFIGS; do
  steps=$STEPS_C1; [ "$cfg" = C2 ] && steps=$STEPS_C2
  args=(bench/mpi_train.py --config "$cfg" --steps "$steps" --warmup 1)
  # one process: 1 BLAS thread on one core, 2 BLAS threads on two
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
    pin 0 "$PY" "${args[@]}" --label "1x1" >> "$JSONL"
  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 \
    pin 0,1 "$PY" "${args[@]}" --label "1x2" >> "$JSONL"
  for n in $RANKS; do
    for mode in strong weak; do
      extra=(); [ "$mode" = weak ] && extra=(--weak)
      # charlm pins each rank to one BLAS thread; hydra binds each rank to its own core
      timeout 60 mpiexec -bind-to core -n "$n" "$PY" "${args[@]}" "${extra[@]}" \
        --label "${n}x1 $mode" >> "$JSONL"
    done
  done
done

"$PY" - "$JSONL" <<'PYEOF' | tee "$OUT/mpi_scaling.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'config':6} {'run':12} {'ranks':>5} {'B':>4} {'B/rank':>6} {'tokens/s':>10} "
      f"{'vs 1x1':>7} {'step ms':>8} {'allreduce ms':>12} {'share':>6}")
base = {r["config"]: r["tokens_per_s"] for r in rows if r["label"] == "1x1"}
for r in rows:
    print(f"{r['config']:6} {r['label']:12} {r['ranks']:>5} {r['batch']:>4} "
          f"{r['batch_per_rank']:>6} {r['tokens_per_s']:>10,.0f} "
          f"{r['tokens_per_s'] / base[r['config']]:>6.2f}x {r['step_ms']:>8.1f} "
          f"{r['allreduce_ms']:>12.2f} {r['allreduce_share']:>6.1%}")
PYEOF
