#!/usr/bin/env bash
# Reproduces the "shared" section of docs/results.md (scripts/results.sh shared runs it): splits
# ../shared/data by file (per label, every 5th file sorted by name is held
# out, and labels of fewer than 8 files also their last file, so every label
# keeps at least two held-out files), tokenizes both parts, trains the small preset on CPU for 30 minutes,
# exports, generates traffic for every label and evaluates it against the
# held-out real captures (memorisation against the training captures).
#
#   scripts/shared-results.sh [WORK_DIR] [BUDGET]     (defaults: results-shared, 30m)
#
# LAYOUT=flow|v1 (default flow) picks the token layout (ADDR_TABLE=N sets the
# flow layout's --addr-table; 0 is spec version 2, without address references); everything else is
# the same for both, so two work directories compare the layouts. THREADS
# (default: one per core the process may use) sets --threads of train and sample, so
# two runs side by side can each have a core.
#
# BUDGET is a duration (30m: --time, what docs/results.md records) or a step
# count (1300: --steps, to rebuild the same model on a faster or slower
# machine: the table gives the step count the 30 minutes reached).
#
# Stages whose output exists are skipped, so an interrupted run can be resumed
# by running the script again (training continues with --resume).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="$repo/../shared/data/pcaps"
work="${1:-results-shared}"
budget="${2:-30m}"
layout="${LAYOUT:-flow}"
if [[ "$budget" =~ ^[0-9]+$ ]]; then budget_flag=(--steps "$budget"); else budget_flag=(--time "$budget"); fi
[ -d "$data" ] || { echo "no shared captures at $data" >&2; exit 1; }
mkdir -p "$work"
cd "$work"
if [ ! -x ./netssm-cli ]; then (cd "$repo" && go build -o "$OLDPWD/netssm-cli" ./cmd/netssm-cli); fi
cli=(./netssm-cli --quiet)
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

if [ ! -f split.done ]; then
  rm -rf real-train real-heldout
  for dir in "$data"/*/; do
    label=$(basename "$dir")
    mkdir -p "real-train/$label" "real-heldout/$label"
    files=($(ls "$dir" | sort))
    n=${#files[@]}
    if ((n < 3)); then
      echo "split: $label has $n files; a label needs 3 (2 held out, 1 to train on): left out" >&2
      rmdir "real-train/$label" "real-heldout/$label"
      continue
    fi
    # every 5th file from the third is held out; labels of fewer than 8 files
    # also hold out their last one, so every label keeps two held-out files.
    for ((i = 0; i < n; i++)); do
      f=${files[$i]}
      if ((i % 5 == 2 || (n < 8 && i == n - 1))); then ln -s "$dir$f" "real-heldout/$label/$f"; else ln -s "$dir$f" "real-train/$label/$f"; fi
    done
  done
  touch split.done
fi
addr=()
[ -n "${ADDR_TABLE:-}" ] && addr=(--addr-table "$ADDR_TABLE")
[ -f train.parquet ] || "${cli[@]}" tokenize --layout "$layout" "${addr[@]}" -o train.parquet real-train
[ -f heldout.parquet ] || "${cli[@]}" tokenize --layout "$layout" "${addr[@]}" -o heldout.parquet real-heldout
"${cli[@]}" dataset info train.parquet > dataset-train.txt
"${cli[@]}" dataset info heldout.parquet > dataset-heldout.txt

if [ ! -f run/config.json ]; then
  "${cli[@]}" train --data train.parquet --val heldout.parquet --preset small --ctx 512 --chunk 64 --batch 8 --segment 2048 --packet-positions 128 \
    "${budget_flag[@]}" --lr 2e-3 --warmup 30 --eval-every 150 --eval-tokens 20000 --checkpoint-every 75 \
    --seed 1 "${threads[@]}" --out run | tee train.txt
elif [ ! -f run/loss.png ]; then
  "${cli[@]}" train --out run --resume | tee train.txt
fi
[ -d model ] || "${cli[@]}" export run -o model
[ "${STOP_AFTER:-}" = export ] && { echo "stopped after export (STOP_AFTER=export)"; exit 0; }
for dir in real-heldout/*/; do
  label=$(basename "$dir")
  [ -d "synthetic/$label" ] || "${cli[@]}" sample --model model --label "$label" --traces 16 --batch 16 "${threads[@]}" \
    --packets 500 --seed 1 -o "synthetic/$label/"
done
[ -d synthetic-unconstrained ] || "${cli[@]}" sample --model model --label video_call --traces 16 --batch 16 "${threads[@]}" \
  --packets 500 --seed 1 --no-constrain -o synthetic-unconstrained/video_call/
[ -f report/metrics.json ] || "${cli[@]}" eval --real real-heldout --synth synthetic --train real-train --out report
# ALSO_PRESET=NAME: the same traffic sampled with `sample --preset NAME` too,
# evaluated the same way (synthetic-NAME/, report-NAME/).
if [ -n "${ALSO_PRESET:-}" ]; then
  p=$ALSO_PRESET
  for dir in real-heldout/*/; do
    label=$(basename "$dir")
    [ -d "synthetic-$p/$label" ] || "${cli[@]}" sample --model model --label "$label" --traces 16 --batch 16 "${threads[@]}" \
      --packets 500 --seed 1 --preset "$p" -o "synthetic-$p/$label/"
  done
  [ -f "report-$p/metrics.json" ] || "${cli[@]}" eval --real real-heldout --synth "synthetic-$p" --train real-train --out "report-$p"
fi
[ -f report-unconstrained/metrics.json ] || "${cli[@]}" eval --real real-heldout/video_call --synth synthetic-unconstrained --out report-unconstrained || true
echo "done: $work/report/report.md"
