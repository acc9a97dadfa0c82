# Sourced by the tagging measurement jobs (job_tag_charlm.sh, job_tag_torch.sh,
# job_charfeat.sh, job_charword_torch.sh, job_lmtext.sh): the set-up they share.
# Reads $CORPORA and $OUT (both required), $PYTHON (default python3), $BUDGET_SCALE (default 1).
# Sets: here (the repository, put on PYTHONPATH), PY, TAGGING (the corpora's tagging folder),
# SCALE, B (a tagger's 80 s training budget, scaled), EVERY (evaluate every 100 steps, scaled,
# at least 5); makes $OUT. `scaled SECONDS` prints SECONDS × SCALE, at least 1.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${PYTHONPATH:-$here}"
PY="${PYTHON:-python3}"
TAGGING="${CORPORA:?set CORPORA to the corpora folder}/tagging"
OUT="${OUT:?set OUT to the results folder}"
SCALE="${BUDGET_SCALE:-1}"
scaled() { "$PY" -c "print(max(1, round($1 * float('$SCALE'))))"; }
B=$("$PY" -c "print(round(80 * float('$SCALE'), 1))")
EVERY=$("$PY" -c "print(max(5, round(100 * float('$SCALE'))))")
mkdir -p "$OUT"
