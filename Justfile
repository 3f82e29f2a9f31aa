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
