#!/usr/bin/env bash
# One measurement job of issue 13, at one level (word or char): a basic RNN, a GRU and an LSTM
# of the same size, each trained for the same wall-clock budget on the same WikiText-2 text;
# then `charlm pairs` on BLiMP for each, and `charlm gradients --json` for the trained models
# and for fresh ones of the same shapes (before / after). Called by job_longrange_word.sh
# and job_longrange_char.sh; reads $CORPORA, writes $OUT/longrange_<level>.jsonl.
#
# Budget (a 7-minute slot on 2 cores): 55 s of training per model (3 × 55 s); estimated, not
# timed: BLiMP scoring about 30-40 s per model, gradients about 30-60 s in all. BUDGET_SCALE (default 1) scales the
# training time, the text read, the BLiMP subset and the gradient windows, for a quick check.
#
# BLiMP is rewritten in WikiText-2's spelling (bench/blimp_as_wikitext.py). A subset, because
# scoring all 134,000 sentences takes minutes per model (see the README):
# every pair of the six subject-verb agreement paradigms (6,000 pairs) and the first 50 pairs of
# each of the other 61 paradigms (3,050). Overall accuracy is then reported as the mean of the
# 67 per-paradigm accuracies, as BLiMP's overall (1,000 pairs per paradigm) is.
set -euo pipefail
LEVEL=${1:?word or char}
: "${CORPORA:?set CORPORA to the corpora folder}" "${OUT:?set OUT to the output folder}"
PY=${PYTHON:-python3}
SCALE=${BUDGET_SCALE:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RES="$OUT/longrange_${LEVEL}.jsonl"
: >"$RES"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*" >&2; }
num() { "$PY" -c "import sys; print(max(int(sys.argv[2]), round(float(sys.argv[1]) * $SCALE)))" "$@"; }

TRAIN_S=$(num 55 2)
TEXT_CHARS=$(num 3000000 200000)
VALID_CHARS=$(num 250000 20000)
AGREE=$(num 1000 10)
OTHER=$(num 50 2)
WINDOWS=$(num 16 4)
STEPS=$(num 200 30)
if [ "$LEVEL" = word ]; then
  SHAPE=(--level word --layers 2 --hidden 200 --embed 200)
  VOCAB=(--vocab-size 10000)
else
  SHAPE=(--level char --layers 2 --hidden 200 --embed 64)
  VOCAB=()
fi

# the same text for every cell: the first TEXT_CHARS of train.txt (about 600k words: more than
# a 55-second run reads), and the first VALID_CHARS of valid.txt for the validation loss
head -c "$TEXT_CHARS" "$CORPORA/wikitext-2/train.txt" >"$WORK/train.txt"
head -c "$VALID_CHARS" "$CORPORA/wikitext-2/valid.txt" >"$WORK/valid.txt"
# BLiMP in WikiText's spelling ("isn 't", "full ."): see blimp_as_wikitext.py
"$PY" "$(dirname "$0")/blimp_as_wikitext.py" "$CORPORA/blimp" "$WORK/blimp" \
  --agreement "$AGREE" --other "$OTHER"

for cell in rnn gru lstm; do
  say "train $LEVEL $cell for ${TRAIN_S}s"
  "$PY" -m charlm train "$WORK/train.txt" --valid "$WORK/valid.txt" "${SHAPE[@]}" \
    "${VOCAB[@]}" --cell "$cell" --dropout 0 --time "${TRAIN_S}s" --eval-every 0 \
    --seed 1 --out "$WORK/$cell.npz" >/dev/null
  "$PY" -m charlm info --model "$WORK/$cell.npz" --json | "$PY" -c "
import json, sys
d = json.load(sys.stdin)
print(json.dumps({'kind': 'train', 'level': '$LEVEL', 'cell': '$cell', 'config': d['config'],
                  'parameters': d['parameters'], 'vocab_size': d['vocab_size'],
                  'steps': d['steps'], 'tokens_seen': d['tokens_seen'], 'seconds': d['seconds'],
                  'valid_loss': d['best_valid_loss']}))" >>"$RES"
done

for cell in rnn gru lstm; do
  say "pairs $LEVEL $cell"
  "$PY" -m charlm pairs "$WORK/blimp" --model "$WORK/$cell.npz" --json | "$PY" -c "
import json, sys
rows = [json.loads(line) for line in sys.stdin]
s = rows.pop()['summary']
# the same figures without the pairs that have an <UNK> (what --skip-oov reports)
for key, field in (('paradigms', 'uid'), ('phenomena', 'phenomenon')):
    for name, g in s[key].items():
        kept = [r['correct'] for r in rows if r[field] == name and not r['oov']]
        g['accuracy_without_oov'] = sum(kept) / len(kept) if kept else None
kept = [r['correct'] for r in rows if not r['oov']]
s['overall']['accuracy_without_oov'] = sum(kept) / len(kept) if kept else None
print(json.dumps({'kind': 'pairs', 'level': '$LEVEL', 'cell': '$cell', **s}))" >>"$RES"
done

say "gradients of the trained models"
"$PY" -m charlm gradients "$WORK/valid.txt" --model "$WORK/rnn.npz" --model "$WORK/gru.npz" \
  --model "$WORK/lstm.npz" --steps "$STEPS" --windows "$WINDOWS" --jacobian \
  --jacobian-windows 1 --json | "$PY" -c "
import json, sys
print(json.dumps({'kind': 'gradients', 'level': '$LEVEL', 'when': 'trained',
                  **json.load(sys.stdin)}))" >>"$RES"
say "gradients of fresh models"
"$PY" -m charlm gradients "$WORK/valid.txt" --cell rnn,gru,lstm "${SHAPE[@]}" "${VOCAB[@]}" \
  --steps "$STEPS" --windows "$WINDOWS" --jacobian --jacobian-windows 1 --json | "$PY" -c "
import json, sys
print(json.dumps({'kind': 'gradients', 'level': '$LEVEL', 'when': 'fresh',
                  **json.load(sys.stdin)}))" >>"$RES"

if [ "$LEVEL" = char ]; then
  # how fast `charlm pairs` is with charlm's default char model (2×512 LSTM, untrained: the
  # speed does not depend on the weights) on the first 170 pairs of each agreement paradigm
  # (about 2,000 sentences), for the README's estimate of a full BLiMP run
  say "pairs speed of the default char model"
  "$PY" "$(dirname "$0")/blimp_as_wikitext.py" "$CORPORA/blimp" "$WORK/speed" \
    --agreement "$(num 170 5)" --other 0
  head -c 20000 "$WORK/valid.txt" >"$WORK/tiny.txt"    # a small validation pass at the end
  "$PY" -m charlm train "$WORK/tiny.txt" --valid "$WORK/tiny.txt" --steps 1 \
    --eval-batch 4 --out "$WORK/default.npz" >/dev/null 2>&1
  "$PY" -m charlm pairs "$WORK/speed" --model "$WORK/default.npz" --json | tail -n 1 \
    | "$PY" -c "
import json, sys
s = json.load(sys.stdin)['summary']
print(json.dumps({'kind': 'speed', 'model': 'default char 2x512 LSTM', 'sentences':
                  s['sentences'], 'seconds': s['seconds']}))" >>"$RES"
fi

say "done"
"$PY" "$(dirname "$0")/longrange_report.py" "$RES"
