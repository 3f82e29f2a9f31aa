#!/usr/bin/env bash
# Training and generation speed of two token layouts, in packets per second,
# in one sitting: the work directories of two scripts/shared-results.sh runs
# (LAYOUT=v1 and LAYOUT=flow), each with its train.parquet and exported model.
#
#   scripts/layout-bench.sh V1_DIR FLOW_DIR [THREADS]
#
# Training: 8 steps of the small preset with the shared-results flags (B=8,
# ctx 512), the median tokens/s of steps 3–8 divided by the dataset's tokens
# per packet. Generation: batch 1 (one trace of 1,000 packets) and batch 32
# (32 traces of 200 packets), packets written per wall-clock second of the
# whole command: long enough that starting it (reading the bundle, building
# the sessions: about 0.3 s) is a few per cent of the time. The two layouts
# alternate, each measurement twice.
set -euo pipefail
v1="$1"; flow="$2"; threads="${3:-0}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go build -o "$tmp/netssm-cli" ./cmd/netssm-cli)
cli="$tmp/netssm-cli"

per_packet() { "$cli" dataset info "$1/train.parquet" | awk '/^tokens per packet:/ {print $4}'; }
train_tps() {
  "$cli" --quiet train --data "$1/train.parquet" --val-frac 0 --preset small --ctx 512 --chunk 64 --batch 8 \
    --packet-positions 128 --steps 8 --eval-every 0 --seed 1 --threads "$threads" --out "$tmp/run-$2" >/dev/null
  python3 -c "import json,statistics,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(statistics.median(x['tokens_per_s'] for x in r[2:]))" "$tmp/run-$2/metrics.jsonl"
  rm -rf "$tmp/run-$2"
}
gen_pps() { # dir traces batch packets
  local t0 t1
  t0=$(date +%s.%N)
  "$cli" --quiet sample --model "$1/model" --label video_call --traces "$2" --batch "$3" --packets "$4" --ignore-eos \
    --seed 1 --threads "$threads" -o "$tmp/gen/" >/dev/null
  t1=$(date +%s.%N)
  rm -rf "$tmp/gen"
  python3 -c "print($2*$4/($t1-$t0))"
}
declare -A ppk=([v1]=$(per_packet "$v1") [flow]=$(per_packet "$flow"))
declare -A dir=([v1]=$v1 [flow]=$flow)
echo "tokens per packet (training data): v1 ${ppk[v1]}, flow ${ppk[flow]}"
for round in 1 2; do
  for l in v1 flow; do
    tps=$(train_tps "${dir[$l]}" "$l")
    echo "round $round $l train: $(python3 -c "print(f'{$tps:.0f} tokens/s = {$tps/${ppk[$l]}:.1f} packets/s')")"
  done
  for l in v1 flow; do
    echo "round $round $l generate batch 1: $(gen_pps "${dir[$l]}" 1 1 1000 | xargs printf '%.1f') packets/s"
    echo "round $round $l generate batch 32: $(gen_pps "${dir[$l]}" 32 32 200 | xargs printf '%.1f') packets/s"
  done
done
