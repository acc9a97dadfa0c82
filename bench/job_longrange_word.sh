#!/usr/bin/env bash
# Issue 13, job A: RNN, GRU and LSTM (2×200) at word level on WikiText-2, 55 s of
# training each, then BLiMP accuracy and gradients over distance (see longrange_job.sh).
# Reads $CORPORA, writes $OUT/longrange_word.jsonl; estimated 5.5-6 minutes on 2 cores (from the
# arithmetic; only the BUDGET_SCALE=0.02-0.05 check ran, on a heavily shared machine).
# Quick check: BUDGET_SCALE=0.05 CORPORA=... OUT=... bash bench/job_longrange_word.sh
exec bash "$(dirname "$0")/longrange_job.sh" word
