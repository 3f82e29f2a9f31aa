#!/usr/bin/env bash
# Regenerates docs/results.md, the record of every figure README and docs/
# quote: it runs the commands behind a section and rewrites that section
# (between its <!-- results:NAME --> markers) with each figure, the command
# that produced it, the device and the date. Sections not named keep what
# their last run wrote.
#
#   scripts/results.sh [WORK_DIR] SECTION...
#
# Sections:
#   demo    netssm-cli demo (embedded captures; about 3 minutes on 2 cores)
#   shared  scripts/shared-results.sh (../shared/data; 30 minutes of training; LAYOUT, default v1)
#   bench   scripts/bench-vs-torch.sh (ROUNDS rounds, default 3), pinned to one core (BENCH_CPU, default 1);
#           needs ../shared/bench/torch_ref and python3-torch on OpenBLAS
#   long    scripts/long-sample.sh on the shared run's model (after shared)
#   layouts the flow layout against v1: scripts/shared-results.sh with LAYOUT=v1
#           and LAYOUT=flow (THREADS=1 each, side by side, each pinned to its own
#           core when taskset exists; flow's model also sampled with --preset
#           paper), then flow without its address table (ADDR_TABLE=0, spec
#           version 2, as many steps as flow), eval of the training captures against the
#           held-out ones (the reference column), scripts/layout-bench.sh (pinned to
#           BENCH_CPU, default 1), scripts/layout-table.py; a work directory whose
#           report exists is reused
# Needs jq. WORK_DIR defaults to results-work.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="results-work"
if [ $# -gt 0 ] && [[ "$1" != demo && "$1" != shared && "$1" != bench && "$1" != long && "$1" != layouts ]]; then work="$1"; shift; fi
[ $# -gt 0 ] || { sed -n '2,19p' "$0" >&2; exit 2; }
command -v jq >/dev/null || { echo "results.sh needs jq" >&2; exit 1; }
mkdir -p "$work"
work="$(cd "$work" && pwd)"
doc="$repo/docs/results.md"
cli="$work/netssm-cli"
(cd "$repo" && go build -o "$cli" ./cmd/netssm-cli)

device() {
  local cpu gpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
  echo "$cpu, $(grep -c ^processor /proc/cpuinfo) cores${gpu:+, $gpu}"
}

# header NAME TITLE COMMAND: the section's first lines.
header() {
  printf '## %s\n\nCommand: `%s`  \nDevice: %s  \nDate: %s (UTC), netssm %s\n\n' \
    "$2" "$3" "$(device)" "$(date -u +%Y-%m-%d)" "$(git -C "$repo" rev-parse --short HEAD)"
}

# replace NAME FILE: put FILE's text between the section's markers.
replace() {
  local name=$1 body=$2 tmp
  tmp=$(mktemp)
  [ -f "$doc" ] || printf '# Results\n' > "$doc"
  if ! grep -q "<!-- results:$name -->" "$doc"; then
    printf '\n<!-- results:%s -->\n<!-- /results:%s -->\n' "$name" "$name" >> "$doc"
  fi
  awk -v name="$name" -v body="$body" '
    $0 == "<!-- results:" name " -->" { print; while ((getline line < body) > 0) print line; skip = 1; next }
    $0 == "<!-- /results:" name " -->" { skip = 0 }
    !skip { print }' "$doc" > "$tmp"
  mv "$tmp" "$doc"
}

section_demo() {
  local out="$work/demo" body="$work/demo.md"
  rm -rf "$out"
  "$cli" --quiet demo --out "$out" | tee "$work/demo.txt"
  local m="$out/report/metrics.json" full
  full=$(jq -s 'map(select(.val_full)) | last' "$out/run/metrics.jsonl")
  {
    header demo "The demo (embedded captures)" "netssm-cli demo --out DIR"
    echo "| figure | value |"
    echo "|---|---|"
    echo "| held-out loss, every held-out token (nats/token) | $(jq -r '.val_loss | .*1000|round/1000' <<<"$full") |"
    echo "| its unigram baseline | $(jq -r '.val_unigram_loss | .*1000|round/1000' <<<"$full") |"
    echo "| training steps | $(jq -r '.step' <<<"$full") |"
    echo "| TSTR macro-F1 (classifier trained on synthetic, tested on held-out real windows) | $(jq -r '.utility.tstr.macro_f1 // "none" | if type=="number" then .*100|round/100 else . end' "$m"), chance $(jq -r '.utility.trtr.per_label_f1 | length | if .>0 then (1/.*100|round/100) else "n/a" end' "$m") |"
    echo "| TSTR accuracy | $(jq -r '.utility.tstr.accuracy // "none" | if type=="number" then .*100|round/100 else . end' "$m") on $(jq -r '.utility.tstr.test_windows // 0' "$m") windows |"
    echo "| TRTR macro-F1 (trained on real) | $(jq -r '.utility.trtr.macro_f1 // "none" | if type=="number" then .*100|round/100 else . end' "$m") |"
    echo "| synthetic packets parsing as IP + TCP/UDP | $(jq -r '.compliance.synth.ip_tcp_udp_parse.value*1000|round/10' "$m") % |"
    echo "| mean Jensen–Shannon divergence, real vs synthetic | $(jq -r '.fidelity.pooled.mean_jsd*1000|round/1000' "$m") |"
    echo
    echo "The demo's closing lines:"
    echo
    echo '```'
    sed -n '/^netssm demo finished/,$p' "$work/demo.txt" | sed -e 's/ in [0-9hms]*\./ in (time)./' -e "s|$out|DIR|g"
    echo '```'
  } > "$body"
  replace demo "$body"
}

section_shared() {
  local out="$work/shared" body="$work/shared.md"
  LAYOUT="${LAYOUT:-v1}" "$repo/scripts/shared-results.sh" "$out" 30m
  local m="$out/report/metrics.json" full
  full=$(jq -s 'map(select(.val_full)) | last' "$out/run/metrics.jsonl")
  {
    header shared "The shared captures (30 minutes, small preset, CPU, layout ${LAYOUT:-v1})" "LAYOUT=${LAYOUT:-v1} scripts/shared-results.sh DIR 30m"
    echo "| figure | value |"
    echo "|---|---|"
    echo "| steps, training tokens | $(jq -r '"\(.step), \(.tokens)"' <<<"$full") |"
    echo "| held-out loss, every held-out token (nats/token) | $(jq -r '.val_loss*1000|round/1000' <<<"$full") |"
    echo "| unigram baseline on the same tokens | $(jq -r '.val_unigram_loss*1000|round/1000' <<<"$full") (ratio $(jq -r '(.val_loss/.val_unigram_loss)*1000|round/1000' <<<"$full")) |"
    echo "| synthetic packets parsing as IP + TCP/UDP | $(jq -r '.compliance.synth.ip_tcp_udp_parse.value*10000|round/100' "$m") % |"
    echo "| mean Jensen–Shannon divergence, pooled | $(jq -r '.fidelity.pooled.mean_jsd*1000|round/1000' "$m") |"
    echo "| TSTR / TRTR accuracy | $(jq -r '"\(.utility.tstr.accuracy*1000|round/1000) / \(.utility.trtr.accuracy*1000|round/1000)"' "$m") |"
  } > "$body"
  replace shared "$body"
}

# section_bench runs scripts/bench-vs-torch.sh (ROUNDS rounds, default 3,
# each figure measured once per round on both sides) pinned to one core
# (BENCH_CPU, default 1) when taskset exists, so that netssm and PyTorch get
# the same single core.
section_bench() {
  local body="$work/bench.md" pin=()
  command -v taskset >/dev/null && pin=(taskset -c "${BENCH_CPU:-1}")
  (cd "$repo" && ROUNDS="${ROUNDS:-3}" "${pin[@]}" scripts/bench-vs-torch.sh) | tee "$work/bench.txt"
  {
    header bench "Throughput against PyTorch (one core, ${ROUNDS:-3} rounds)" "scripts/results.sh DIR bench (ROUNDS=${ROUNDS:-3} ${pin[*]:-} scripts/bench-vs-torch.sh)"
    echo "Fused and standard are netssm's two kernel choices ([kernels.md](kernels.md), which also has the memory of a long training window); the ratios are fused / PyTorch, standard / PyTorch and fused / standard. PyTorch runs with one thread and with one per core it may use (one here), on each OpenBLAS core type that fits the CPU, and each figure keeps its fastest (pt-core: core type/threads). Each round measures every figure once, netssm then PyTorch; the last table holds each figure's median throughputs over the rounds and the median, least and greatest of its per-round ratios."
    echo
    echo '```'; cat "$work/bench.txt"; echo '```'
  } > "$body"
  replace bench "$body"
}

section_long() {
  local body="$work/long.md"
  (cd "$repo" && scripts/long-sample.sh "$work/shared/model") | tee "$work/long.txt"
  { header long "Long generation (1M tokens)" "scripts/long-sample.sh MODEL"; echo '```'; cat "$work/long.txt"; echo '```'; } > "$body"
  replace long "$body"
}

section_layouts() {
  local out="$work/layouts" body="$work/layouts.md" l
  local core=0 pin=()
  mkdir -p "$out"
  # v1 and flow side by side, 30 minutes each; flow's model also sampled with
  # the paper preset
  for l in v1 flow; do
    pin=()
    command -v taskset >/dev/null && pin=(taskset -c $((core++ % $(nproc))))
    local also="" done="$out/$l/report/metrics.json"
    [ $l = flow ] && also=paper done="$out/$l/report-paper/metrics.json"
    [ -f "$done" ] || ALSO_PRESET=$also LAYOUT=$l THREADS=1 "${pin[@]}" "$repo/scripts/shared-results.sh" "$out/$l" 30m > "$out/$l.log" 2>&1 &
  done
  wait
  # flow without its address table (spec version 2), as many steps as flow took
  pin=()
  command -v taskset >/dev/null && pin=(taskset -c "${BENCH_CPU:-1}")
  [ -f "$out/flow2/report-paper/metrics.json" ] ||
    ADDR_TABLE=0 ALSO_PRESET=paper LAYOUT=flow THREADS=1 "${pin[@]}" "$repo/scripts/shared-results.sh" "$out/flow2" \
      "$(jq -s 'map(.step) | max' "$out/flow/run/metrics.jsonl")" > "$out/flow2.log" 2>&1
  # what the training captures themselves score against the held-out ones
  [ -f "$out/reference/report/metrics.json" ] ||
    "$cli" --quiet eval --real "$out/flow/real-heldout" --synth "$out/flow/real-train" --no-utility --out "$out/reference/report"
  pin=()
  command -v taskset >/dev/null && pin=(taskset -c "${BENCH_CPU:-1}")
  [ -f "$out/bench.txt" ] || "${pin[@]}" "$repo/scripts/layout-bench.sh" "$out/v1" "$out/flow" 1 > "$out/bench.txt"
  {
    header layouts "The flow layout against v1 (shared captures, small preset, 30 minutes each, side by side)" \
      "scripts/results.sh DIR layouts (LAYOUT=v1|flow THREADS=1 scripts/shared-results.sh, scripts/layout-bench.sh, scripts/layout-table.py)"
    python3 "$repo/scripts/layout-table.py" "$out/v1" "$out/flow" "$out/bench.txt" "$out/reference" \
      "flow, paper sampling=$out/flow:report-paper" "flow v2=$out/flow2" "flow v2, paper sampling=$out/flow2:report-paper"
    echo
    echo "Training steps reached: v1 $(jq -s 'map(.step) | max' "$out/v1/run/metrics.jsonl"), flow $(jq -s 'map(.step) | max' "$out/flow/run/metrics.jsonl"), flow v2 $(jq -s 'map(.step) | max' "$out/flow2/run/metrics.jsonl")."
    echo
    [ -n "${NOTE:-}" ] && { echo "$NOTE"; echo; }
    echo '```'
    cat "$out/bench.txt"
    echo '```'
  } > "$body"
  replace layouts "$body"
}

for s in "$@"; do
  case "$s" in
    demo | shared | bench | long | layouts) "section_$s" ;;
    *) echo "unknown section $s (demo, shared, bench, long, layouts)" >&2; exit 2 ;;
  esac
done
echo "updated $doc"
