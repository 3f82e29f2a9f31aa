#!/usr/bin/env bash
# The CUDA checks of issues 6 and 7, in one sitting on one GPU machine:
#   1. `netssm-cli version`: ONNX Runtime loads the CUDA provider;
#   2. with TESTS=DIR (test binaries from `go test -c` of ./ort, ./train and
#      ./infer, named ort.test, train.test, infer.test): the I/O binding
#      invariants on CUDA (NETSSM_TEST_EP=cuda);
#   3. train, small preset, B=4, ctx 2048, the same seed on --ep cpu and
#      --ep cuda: the losses of the first steps side by side, then tokens/s
#      with I/O binding (the default under CUDA) and without;
#   4. the same for the paper preset (SKIP_PAPER_CPU=1 skips its slow CPU
#      steps);
#   5. export the small CUDA run and sample from it on --ep cuda at batch 1
#      and 256, with and without I/O binding (and on --ep cpu at batch 1 for
#      scale): tokens/s.
#
#   scripts/cuda-checks.sh CLI ORT_DIR DATA.parquet OUT_DIR
#
# CLI is a netssm-cli binary, ORT_DIR holds libonnxruntime.so.1 with
# libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so
# beside it (what `netssm-cli setup --ep cuda` puts into the user cache).
# The CUDA 13 and cuDNN 9 libraries are looked for under CUDA_LIB_ROOTS
# (default: the nvidia-* Python wheels under /opt and /usr/local) and put on
# LD_LIBRARY_PATH. Every figure comes from one run of this script.
set -uo pipefail
cli=$1 ortdir=$2 data=$3 out=$4
mkdir -p "$out"
export NETSSM_ORT_LIB="$ortdir/libonnxruntime.so.1"
dirs=$(find ${CUDA_LIB_ROOTS:-/opt /usr/local /usr/lib} -xdev \( -name 'libcudart.so.13' -o -name 'libcublas.so.13' \
  -o -name 'libcublasLt.so.13' -o -name 'libcurand.so.10' -o -name 'libcufft.so.12' -o -name 'libcudnn.so.9' \) 2>/dev/null |
  xargs -r -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
"$cli" version || exit 1
gpu=${GPU_EP:-cuda} # GPU_EP=cpu runs the script's logic on a machine without a GPU

# tokens/s of a run: median over its steps after the first 3 (warm-up).
rate() {
  python3 - "$1/metrics.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = [x["tokens_per_s"] for x in rows if x.get("tokens_per_s") and x["step"] > 3 and "val_loss" not in x]
print("steps %d, median tokens/s %.0f" % (rows[-1]["step"], statistics.median(r)) if r else "no steps")
EOF
}
# First-step losses of two runs side by side: DIR_A DIR_B STEPS.
losses() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" "$(basename "$1")" "$(basename "$2")" <<'EOF'
import json, sys
def first(p, n):
    out = {}
    for l in open(p):
        x = json.loads(l)
        if x["step"] <= n and x["step"] not in out:
            out[x["step"]] = x["loss"]
    return out
n = int(sys.argv[3])
a, b = first(sys.argv[1], n), first(sys.argv[2], n)
print("step  %-13s  %-13s  |diff|" % (sys.argv[4], sys.argv[5]))
worst = 0.0
for s in sorted(a):
    if s in b:
        d = abs(a[s] - b[s]); worst = max(worst, d)
        print("%4d  %.7f  %.7f  %.2e" % (s, a[s], b[s], d))
print("max |diff| over the first %d steps: %.2e" % (n, worst))
EOF
}
train() { # preset ep steps dir [flags…]
  local t0=$SECONDS p=$1 ep=$2 n=$3 dir=$4
  shift 4
  "$cli" --quiet train --data "$data" --preset "$p" --ep "$ep" --ctx 2048 --batch 4 --steps "$n" --seed 1 \
    --eval-every 100000 --eval-tokens 20000 --checkpoint-every 100000 --out "$dir" "$@" > "$dir.log" 2>&1
  local rc=$?
  echo "train $p --ep $ep --steps $n $*: rc=$rc, $((SECONDS - t0)) s wall; $(rate "$dir")"
  [ $rc = 0 ] || tail -20 "$dir.log"
}

if [ -n "${TESTS:-}" ]; then
  echo "== I/O binding invariants on $gpu"
  repo=$(pwd) TESTS=$(cd "$TESTS" && pwd)
  for t in ort:Binding train:IOBinding infer:IOBinding; do
    (cd "$repo/${t%%:*}" && NETSSM_TEST_EP=$gpu "$TESTS/${t%%:*}.test" -test.run "${t#*:}" -test.count 1 -test.v 2>&1 | grep -E '^(--- |ok|FAIL|PASS|panic)|_test.go') 
  done
fi

echo "== train small"
train small "$gpu" "${SMALL_STEPS:-60}" "$out/small-gpu"
if [ -z "${SAMPLE_ONLY:-}" ]; then # SAMPLE_ONLY=1: train just the model to sample from
  train small cpu 8 "$out/small-cpu"
  train small "$gpu" "${SMALL_STEPS:-60}" "$out/small-gpu-nobinding" --io-binding off
  losses "$out/small-cpu" "$out/small-gpu" 8
  losses "$out/small-gpu-nobinding" "$out/small-gpu" 8
fi
if [ -z "${SKIP_PAPER:-}${SAMPLE_ONLY:-}" ]; then
  echo "== train paper"
  [ -n "${SKIP_PAPER_CPU:-}" ] || train paper cpu 3 "$out/paper-cpu"
  train paper "$gpu" "${PAPER_STEPS:-20}" "$out/paper-gpu"
  train paper "$gpu" "${PAPER_STEPS:-20}" "$out/paper-gpu-nobinding" --io-binding off
  [ -n "${SKIP_PAPER_CPU:-}" ] || losses "$out/paper-cpu" "$out/paper-gpu" 3
  losses "$out/paper-gpu-nobinding" "$out/paper-gpu" 3
fi

echo "== sample"
"$cli" --quiet export "$out/small-gpu" -o "$out/bundle" || exit 1
label=$("$cli" --quiet model info "$out/bundle" | awk '$1 == "labels" { sub(/^labels +[0-9]+: /, ""); print $1 }')
sample() { # ep batch tokens-per-trace io-binding
  local t0=$SECONDS
  "$cli" --quiet sample --model "$out/bundle" --label "$label" --ep "$1" --batch "$2" --traces "$2" --io-binding "$4" \
    --tokens "$3" --ignore-eos --seed 1 -o "$out/sample-$1-b$2-t$3-$4$([ "$2" = 1 ] && echo .pcap || echo /)" 2>&1 | tail -3
  echo "  (sample --ep $1 --batch $2 --tokens $3 per trace --io-binding $4: $((SECONDS - t0)) s wall)"
}
sample cpu 1 3000 auto
for binding in on off; do
  sample "$gpu" 1 3000 $binding
  sample "$gpu" "${BIG_BATCH:-256}" 600 $binding
done
echo "identical files with and without I/O binding (batch 1, batch ${BIG_BATCH:-256}):"
cmp "$out/sample-$gpu-b1-t3000-on.pcap" "$out/sample-$gpu-b1-t3000-off.pcap" && echo "  batch 1: yes"
diff -rq "$out/sample-$gpu-b${BIG_BATCH:-256}-t600-on" "$out/sample-$gpu-b${BIG_BATCH:-256}-t600-off" >/dev/null && echo "  batch ${BIG_BATCH:-256}: yes"
nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null
