#!/usr/bin/env bash
# Judges every shared real capture as `eval` judges synthetic traffic: each
# capture on the synthetic side, the rest of its label on the real side
# (fixed bounds, and the relative checks against the rest's rates). Prints
# one line per capture and a summary; exits 1 if any capture fails.
#
#   scripts/shared-compliance.sh [WORK_DIR]     (default: results-compliance)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="$repo/../shared/data/pcaps"
work="${1:-results-compliance}"
[ -d "$data" ] || { echo "no shared captures at $data" >&2; exit 1; }
mkdir -p "$work"
cd "$work"
work="$(pwd)"
(cd "$repo" && go build -o "$work/netssm-cli" ./cmd/netssm-cli)
cli=("$work/netssm-cli" --quiet)

total=0
failed=0
printf '%-16s %-66s %s\n' label capture "verdict (against the rest of its label)"
for dir in "$data"/*/; do
  label=$(basename "$dir")
  files=($(ls "$dir" | sort))
  ((${#files[@]} >= 2)) || { echo "$label: one file, nothing to judge it against" >&2; continue; }
  for f in "${files[@]}"; do
    rm -rf rest synth report
    mkdir -p "rest/$label" "synth/$label"
    for g in "${files[@]}"; do [ "$g" = "$f" ] || ln -s "$dir$g" "rest/$label/$g"; done
    ln -s "$dir$f" "synth/$label/$f"
    "${cli[@]}" eval --no-utility --no-tshark --real rest --synth synth --out report >/dev/null 2>&1
    total=$((total + 1))
    if [ "$(jq -r .compliance.synth.pass report/metrics.json)" = true ]; then
      verdict=pass
    else
      verdict="FAIL: $(jq -r '[.compliance.synth.checks[] | select(.pass | not) | .name] | join(", ")' report/metrics.json)"
      failed=$((failed + 1))
    fi
    printf '%-16s %-66s %s\n' "$label" "$f" "$verdict"
  done
done
rm -rf rest synth report
echo "$((total - failed)) of $total captures pass compliance against the rest of their label"
((failed == 0))
