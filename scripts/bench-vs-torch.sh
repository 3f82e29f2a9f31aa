#!/usr/bin/env bash
# Measures netssm next to the PyTorch reference of the same Mamba-2
# (../shared/bench/torch_ref) in one sitting on one machine, and prints the
# ratios. The machines are shared and noisy: compare only figures from the same
# run of this script. It runs ROUNDS rounds (default 3); each round measures
# every figure once, netssm and then PyTorch, so that a slow spell of the
# machine lands on both sides of few ratios; the last table gives each
# figure's median over the rounds, and the median of its per-round ratios.
#
#   [ROUNDS=3] scripts/bench-vs-torch.sh [train|decode|all]
#
# Needs /usr/bin/python3 with python3-torch on OpenBLAS (apt-get install
# python3-torch python3-numpy libjemalloc2 libopenblas0-pthread
# python3-threadpoolctl). PyTorch runs with the reference's "tuned"
# profile (OMP_WAIT_POLICY=PASSIVE, jemalloc), its fairest setting, with one
# thread and with as many threads as the cores the script may use
# (scripts/torch-worker.py), and on each OpenBLAS core type that fits the CPU
# (OpenBLAS's own choice and, on a CPU with AVX-512, SkylakeX, which OpenBLAS
# 0.3.21 does not pick on AMD's AVX-512 CPUs); each figure keeps PyTorch's
# fastest (the pt-core column says which: core type/threads). netssm runs
# with its default, a thread per core.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
ref=../shared/bench/torch_ref
[ -f "$ref/bench.py" ] || { echo "no PyTorch reference at $ref" >&2; exit 1; }
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "python3-torch is not installed: apt-get install python3-torch python3-numpy libjemalloc2" >&2; exit 1; }

# python3-torch uses whatever libblas.so.3 is: Debian's reference BLAS unless
# an optimised one (libopenblas0-pthread) is installed. Against the reference
# BLAS the ratios mean nothing, so the script refuses it and says which BLAS
# PyTorch loaded.
blas=$(/usr/bin/python3 - <<'PY'
import torch
a = torch.randn(256, 256)
(a @ a).sum().item()  # loads BLAS
try:
    from threadpoolctl import threadpool_info
    for i in threadpool_info():
        if i.get("user_api") == "blas":
            print("%s %s (%s)" % (i.get("internal_api"), i.get("version") or "", i.get("filepath")))
            raise SystemExit
except ImportError:
    pass
for line in open("/proc/self/maps"):
    if "blas" in line:
        print(line.split()[-1])
        break
PY
)
case "$blas" in
  ""|*/blas/libblas*|*netlib*) echo "PyTorch runs on the reference BLAS (${blas:-none found}): install libopenblas0-pthread (apt-get install libopenblas0-pthread python3-threadpoolctl) for a fair comparison" >&2; exit 1;;
esac

tuned=(env OMP_WAIT_POLICY=PASSIVE)
for je in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/libjemalloc.so.2; do
  if [ -f "$je" ]; then tuned+=(LD_PRELOAD="$je" MALLOC_CONF=oversize_threshold:0,thp:always,dirty_decay_ms:-1,muzzy_decay_ms:-1); break; fi
done

cores=(default)
grep -qw avx512f /proc/cpuinfo && cores+=(SkylakeX)
ncpu=$(/usr/bin/python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
threads=(1)
[ "$ncpu" -gt 1 ] && threads+=("$ncpu")
torch_once() { # OpenBLAS core, threads, spec-json → tokens/s
  local core=()
  [ "$1" = default ] || core=(OPENBLAS_CORETYPE="$1")
  "${tuned[@]}" "${core[@]}" NETSSM_TORCH_THREADS="$2" /usr/bin/python3 scripts/torch-worker.py "$ref/bench.py" --worker "$3" | grep '^{' | tail -1 |
    /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["tokens_per_s"])'
}
torch_worker() { # spec-json → "tokens/s core/threads" of PyTorch's fastest OpenBLAS core and thread count
  local best=0 bestcore= c n t
  for c in "${cores[@]}"; do
    for n in "${threads[@]}"; do
      t=$(torch_once "$c" "$n" "$1")
      if awk -v a="$t" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=$t bestcore=$c/$n; fi
    done
  done
  echo "$best $bestcore"
}
go_bench() { # package, bench regexp, benchtime → "name tokens/s" lines
  go test -timeout 0 -run '^$' -bench "$2" -benchtime "$3" "$1" | awk '/tokens\/s/ { for (i=1;i<=NF;i++) if ($(i+1)=="tokens/s") print $1, $i }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }

rounds=${ROUNDS:-3}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pytorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') on BLAS: $blas; threads tried: ${threads[*]}; OpenBLAS cores tried: ${cores[*]}; $rounds round(s)"
# netssm runs with --kernels fused (the default) and standard; the ratios
# are fused/pytorch, standard/pytorch and fused/standard.
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
header() { printf '%-28s %12s %12s %12s %8s %8s %8s  %s\n' "$1" fused standard pytorch f/pt s/pt f/s pt-core; }
row() { # label fused standard "pytorch core"
  local pt=${4% *}
  printf '%-28s %12s %12s %12s %8s %8s %8s  %s\n' "$1" "$2" "$3" "$pt" "$(ratio "$2" "$pt")" "$(ratio "$3" "$pt")" "$(ratio "$2" "$3")" "${4#* }"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$pt" >> "$rows"
}
for round in $(seq "$rounds"); do
  header "round $round"
  if [ "$what" = train ] || [ "$what" = all ]; then
    go_out=$(go_bench ./train 'TrainStep$/(tiny|small)/' 3x)
    for p in tiny small; do
      fused=$(echo "$go_out" | awk -v p="$p" '$1 ~ "/"p"/fused/" {print $2}')
      std=$(echo "$go_out" | awk -v p="$p" '$1 ~ "/"p"/standard/" {print $2}')
      theirs=$(torch_worker "{\"kind\":\"train\",\"preset\":\"$p\"}")
      row "train $p B=4 L=2048 tok/s" "$fused" "$std" "$theirs"
    done
  fi
  if [ "$what" = decode ] || [ "$what" = all ]; then
    # netssm: step graph + grammar mask + sampling, as the reference's step + multinomial
    go_out=$(go_bench ./infer 'Mamba2Generate/small/' 3x)
    for b in 1 32; do
      fused=$(echo "$go_out" | awk -v b="$b" '$1 ~ "/fused/batch="b"(-|$)" {print $2}')
      std=$(echo "$go_out" | awk -v b="$b" '$1 ~ "/standard/batch="b"(-|$)" {print $2}')
      theirs=$(torch_worker "{\"kind\":\"gen\",\"preset\":\"small\",\"batch\":$b,\"temperature\":1.0}")
      row "decode small B=$b tok/s" "$fused" "$std" "$theirs"
    done
  fi
done
echo "median over $rounds round(s): throughputs, and the ratios' medians over the rounds (min–max)"
/usr/bin/python3 - "$rows" <<'PY'
import statistics, sys
figs = {}
for line in open(sys.argv[1]):
    name, f, s, p = line.rstrip("\n").split("\t")
    figs.setdefault(name, []).append((float(f), float(s), float(p)))
print("%-28s %12s %12s %12s %16s %16s %16s" % ("figure", "fused", "standard", "pytorch", "f/pt", "s/pt", "f/s"))
for name, runs in figs.items():
    med = [statistics.median(r[i] for r in runs) for i in range(3)]
    def rat(i, j):
        q = [r[i] / r[j] for r in runs]
        return "%.2f (%.2f–%.2f)" % (statistics.median(q), min(q), max(q))
    print("%-28s %12.0f %12.0f %12.1f %16s %16s %16s" % (name, med[0], med[1], med[2], rat(0, 2), rat(1, 2), rat(0, 1)))
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
