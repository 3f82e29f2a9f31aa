# netssm tasks. `just --list` shows them.

# fetch ONNX Runtime into the user cache (ep: cpu or cuda)
setup ep="cpu":
    go run ./cmd/netssm-cli setup --ep {{ep}}

# the test suite (what CI runs)
test:
    go test ./...

# benchmarks; pass a package pattern and a -bench regexp to narrow them
bench pkgs="./..." pattern=".":
    go test -run '^$' -bench '{{pattern}}' -benchmem {{pkgs}}

# formatting and static checks
lint:
    gofmt -l . | tee /dev/stderr | (! read)
    go vet ./...

# the whole pipeline on the embedded captures
demo out="netssm-demo":
    go run ./cmd/netssm-cli demo --out {{out}}

# build the binary
build:
    go build -o bin/netssm-cli ./cmd/netssm-cli

# the CUDA checks on a GPU machine (docs/cuda.md): DATA is a tokenized Parquet dataset
cuda-checks data out="cuda-checks":
    go run ./cmd/netssm-cli setup --ep cuda
    mkdir -p {{out}}/bin
    go build -o {{out}}/bin/netssm-cli ./cmd/netssm-cli
    for p in ort train infer; do go test -c -o {{out}}/bin/$p.test ./$p; done
    TESTS={{out}}/bin scripts/cuda-checks.sh {{out}}/bin/netssm-cli "${XDG_CACHE_HOME:-$HOME/.cache}/netssm/ort/1.29.0" {{data}} {{out}}/results
