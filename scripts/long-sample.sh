#!/usr/bin/env bash
# Shows generation's constant memory and the parse share of its packets on a
# trained bundle (the one scripts/shared-results.sh exports):
#   1. one trace of 10,000 and one of 1,000,000 tokens (--ignore-eos), peak
#      RSS of each (GNU time), tokens/s;
#   2. tshark over every file written: packets, malformed packets;
#   3. the share of packets tshark parses as IPv4/IPv6 + TCP/UDP, with and
#      without structure-aware decoding (4 traces x 500 packets per label);
#   4. seeds and shards: byte-identical files.
#
#   scripts/long-sample.sh BUNDLE [WORK_DIR] [LABEL]    (defaults: long-sample, first label)
#
# SHARE_ON=DIR SHARE_OFF=DIR take the files of step 3 from an earlier run
# (e.g. scripts/shared-results.sh's synthetic/ and synthetic-unconstrained/).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$(cd "$1" && pwd)"
work="${2:-long-sample}"
mkdir -p "$work"
cd "$work"
[ -x ./netssm-cli ] || (cd "$repo" && go build -o "$OLDPWD/netssm-cli" ./cmd/netssm-cli)
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
command -v tshark >/dev/null || { echo "needs tshark" >&2; exit 1; }
labels=$(./netssm-cli --quiet model info "$bundle" | awk '$1 == "labels" { sub(/^labels +[0-9]+: /, ""); print }')
label="${3:-$(echo $labels | awk '{print $1}')}"

echo "bundle $bundle, label $label"
for n in 10000 1000000; do
  out="long-$n.pcap"
  [ -f "$out" ] && [ -f "long-$n.time" ] && continue
  /usr/bin/time -v -o "long-$n.time" ./netssm-cli --quiet sample --model "$bundle" --label "$label" \
    --tokens "$n" --ignore-eos --traces 1 --batch 1 --seed 1 -o "$out" > "long-$n.txt" &
  # Resident memory while it runs (seconds, VmRSS kB, VmHWM kB), every 5 s:
  # the peak also holds the start-up (loading the bundle, creating the ONNX
  # Runtime sessions), whose height varies from run to run.
  sleep 1
  pid=$(pgrep -n -f -- "-o $out") || true
  t=0
  while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do
    awk -v t="$t" '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { if (r) print t, r, h }' "/proc/$pid/status" 2>/dev/null || true
    sleep 5; t=$((t + 5))
  done > "long-$n.rss"
  wait
done
for n in 10000 1000000; do
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "long-$n.time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "long-$n.time")
  echo "tokens $n: peak RSS ${rss} kB, wall $wall"
done
r10k=$(awk -F': ' '/Maximum resident set size/ {print $2}' long-10000.time)
r1m=$(awk -F': ' '/Maximum resident set size/ {print $2}' long-1000000.time)
awk -v a="$r10k" -v b="$r1m" 'BEGIN { printf "peak RSS 1M / 10k tokens: %.3f\n", b/a }'
# Steady state: resident memory after the first 10 s against the last sample.
awk 'NR == 3 { a = $2 } { b = $2 } END { if (a) printf "resident during the 1M trace: %d kB at 10 s, %d kB at the end (%.3f)\n", a, b, b/a }' long-1000000.rss

share_on="${SHARE_ON:-share-on}" share_off="${SHARE_OFF:-share-off}"
for c in on off; do
  [ -n "${SHARE_ON:-}" ] && break
  for l in $labels; do
    d="share-$c/$l"
    [ -d "$d" ] && continue
    flag=()
    [ "$c" = off ] && flag=(--no-constrain)
    ./netssm-cli --quiet sample --model "$bundle" --label "$l" --traces 4 --batch 4 --packets 500 --seed 1 "${flag[@]}" -o "$d/" > /dev/null
  done
done

# tshark: frame.protocols per packet; malformed ones carry _ws.malformed.
count() { # files… → "packets parsed malformed"
  for f in "$@"; do tshark -n -r "$f" -T fields -e frame.protocols 2>/dev/null; done |
    awk '{ n++ } /:(ip|ipv6):(tcp|udp)/ { p++ } /_ws.malformed/ { m++ } END { printf "%d %d %d\n", n, p, m }'
}
read -r n p m < <(count long-10000.pcap long-1000000.pcap)
echo "long traces: $n packets, $m malformed (tshark)"
for c in on off; do
  dir=$share_on
  [ "$c" = off ] && dir=$share_off
  read -r n p m < <(count "$dir"/*/*.pcap)
  awk -v c="$c" -v n="$n" -v p="$p" -v m="$m" 'BEGIN { printf "structure-aware decoding %s: %d packets, IPv4/IPv6+TCP/UDP %.1f%%, malformed %d (%.1f%%)\n", c, n, 100*p/n, m, 100*m/n }'
done

# Labels must matter: the same seed under different labels should not give
# the same file.
dups=$(md5sum "$share_on"/*/*.pcap | awk '{print $1}' | sort | uniq -d | wc -l)
echo "files identical across labels (same seed, same trace index): $dups"

# Seeds and shards: the same seed twice, another batch size, and two shards
# must give byte-identical files.
if [ ! -f seeds.done ]; then
  rm -rf seed-a seed-b seed-c shards
  common=(--model "$bundle" --label "$label" --traces 4 --packets 100 --seed 7)
  ./netssm-cli --quiet sample "${common[@]}" --batch 2 -o seed-a/ > /dev/null
  ./netssm-cli --quiet sample "${common[@]}" --batch 2 -o seed-b/ > /dev/null
  ./netssm-cli --quiet sample "${common[@]}" --batch 4 -o seed-c/ > /dev/null
  ./netssm-cli --quiet sample "${common[@]}" --batch 2 --shard 0/2 -o shards/ > /dev/null
  ./netssm-cli --quiet sample "${common[@]}" --batch 2 --shard 1/2 -o shards/ > /dev/null
  touch seeds.done
fi
same() { if diff -r "$1" "$2" > /dev/null; then echo identical; else echo DIFFERENT; fi; }
echo "same seed twice: $(same seed-a seed-b); batch 2 vs batch 4: $(same seed-a seed-c); shards 0/2 + 1/2 vs unsharded: $(same seed-a shards)"
