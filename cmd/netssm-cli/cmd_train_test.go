package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/tokenizer"
)

func TestTrainUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	out := filepath.Join(dir, "run")
	base := []string{"train", "--data", data, "--steps", "2", "--out", out}
	for _, args := range [][]string{
		{"train", "--steps", "2", "--out", out},
		{"train", "--data", data, "--out", out},
		append(append([]string{}, base...), "--chunk", "-1"),
		append(append([]string{}, base...), "--min-lr-ratio", "1.5"),
		append(append([]string{}, base...), "--ctx", "1"),
		append(append([]string{}, base...), "--data-mode", "shuffled"),
		append(append([]string{}, base...), "--data-mode", "random", "--remap-addresses"),
		append(append([]string{}, base...), "--packet-positions", "1"),
		append(append([]string{}, base...), "--packet-positions", "-4"),
		append(append([]string{}, base...), "--prev-packets", "-1"),
		append(append([]string{}, base...), "--prev-packets", "9"),
		append(append([]string{}, base...), "--prev-packets", "2", "--packet-history", "1"),
		append(append([]string{}, base...), "--packet-history", "64"),
	} {
		msg, code := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(msg, "usage") {
			t.Errorf("%v: exit %d, want 2 with a usage line:\n%s", args, code, msg)
		}
	}
}

// The SSD chunk length is a speed knob: the model computes the same
// function for every chunk length, so the first losses of two runs that
// differ only in --chunk agree (to float32 reassociation), and the run
// records the chunk length it used (export and resume take it from there).
func TestTrainChunkLengthChangesSpeedNotLosses(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	if msg, code := runCLI(t, nil, "-q", "tokenize", "-o", data, projectCaptures(t)); code != 0 {
		t.Fatalf("tokenize exit %d:\n%s", code, msg)
	}
	losses := map[string][]float64{}
	for _, chunk := range []string{"16", "0"} {
		out := filepath.Join(dir, "run-"+chunk)
		msg, code := runCLI(t, nil, "-q", "train", "--data", data, "--val-frac", "0", "--preset", "tiny", "--ctx", "96",
			"--batch", "2", "--chunk", chunk, "--steps", "3", "--eval-every", "0", "--seed", "7", "--out", out)
		if code != 0 {
			t.Fatalf("--chunk %s: exit %d:\n%s", chunk, code, msg)
		}
		want := map[string]int{"16": 16, "0": 64}[chunk] // tiny's own is 64
		m := runModelConfig(t, out)
		if m.ChunkSize != want {
			t.Errorf("--chunk %s: config.json records chunk_size %d, want %d", chunk, m.ChunkSize, want)
		}
		// train's defaults: packet positions K = 128, no copy logits
		if m.PacketPositions != 128 || m.PrevPackets != 0 || m.PacketHistory != 0 {
			t.Errorf("config.json records packet_positions %d, prev_packets %d, packet_history %d; want the defaults 128, 0, 0",
				m.PacketPositions, m.PrevPackets, m.PacketHistory)
		}
		if m.Labels == 0 || m.FirstLabel == 0 {
			t.Errorf("config.json records labels %d from id %d; want the label embedding, train's default", m.Labels, m.FirstLabel)
		}
		losses[chunk] = metricLosses(t, filepath.Join(out, "metrics.jsonl"))
	}
	a, b := losses["16"], losses["0"]
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("losses per run: %d and %d, want 3", len(a), len(b))
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-4*math.Abs(b[i]) {
			t.Errorf("step %d: loss %.7f with chunk 16, %.7f with chunk 64", i+1, a[i], b[i])
		}
	}
}

// A model with packet positions and previous packets goes the whole way:
// trained, resumed (the run keeps its K, J, history and <pkt> id, whatever
// the flags say), exported and sampled into packets.
func TestTrainWithPacketFeaturesResumesExportsAndSamples(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	if msg, code := runCLI(t, nil, "-q", "tokenize", "-o", data, projectCaptures(t)); code != 0 {
		t.Fatalf("tokenize exit %d:\n%s", code, msg)
	}
	out := filepath.Join(dir, "run")
	train := []string{"-q", "train", "--data", data, "--val-frac", "0", "--preset", "tiny", "--ctx", "96", "--batch", "2",
		"--packet-positions", "32", "--prev-packets", "2", "--packet-history", "40", "--eval-every", "0", "--seed", "7", "--out", out}
	if msg, code := runCLI(t, nil, append(train, "--steps", "2")...); code != 0 {
		t.Fatalf("train: exit %d:\n%s", code, msg)
	}
	if msg, code := runCLI(t, nil, "-q", "train", "--out", out, "--resume", "--steps", "3", "--prev-packets", "1", "--label-embedding=false"); code != 0 {
		t.Fatalf("train --resume: exit %d:\n%s", code, msg)
	}
	if m := runModelConfig(t, out); m.Labels == 0 {
		t.Errorf("the resumed run lost its label embedding (config.json labels %d)", m.Labels)
	}
	if m := runModelConfig(t, out); m.PacketPositions != 32 || m.PacketToken != tokenizer.TokPkt || m.PrevPackets != 2 || m.PacketHistory != 40 {
		t.Errorf("config.json records packet_positions %d, packet_token %d, prev_packets %d, packet_history %d; want 32, %d, 2, 40",
			m.PacketPositions, m.PacketToken, m.PrevPackets, m.PacketHistory, tokenizer.TokPkt)
	}
	if n := len(metricLosses(t, filepath.Join(out, "metrics.jsonl"))); n != 3 {
		t.Errorf("%d logged steps after resuming to 3", n)
	}
	bundle := filepath.Join(dir, "bundle")
	if msg, code := runCLI(t, nil, "-q", "export", out, "-o", bundle); code != 0 {
		t.Fatalf("export: exit %d:\n%s", code, msg)
	}
	pcap := filepath.Join(dir, "synthetic.pcap")
	if msg, code := runCLI(t, nil, "-q", "sample", "--model", bundle, "--label", "web", "--packets", "5", "--ignore-eos", "--seed", "1", "-o", pcap); code != 0 {
		t.Fatalf("sample: exit %d:\n%s", code, msg)
	}
	if st, err := os.Stat(pcap); err != nil || st.Size() <= 24 {
		t.Fatalf("sample wrote no packets to %s (%v)", pcap, err)
	}
}

// runModelConfig reads the model configuration a run records in its
// config.json.
func runModelConfig(t *testing.T, run string) model.Config {
	t.Helper()
	var cfg struct {
		Model model.Config `json:"model"`
	}
	raw, err := os.ReadFile(filepath.Join(run, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", filepath.Join(run, "config.json"), err)
	}
	return cfg.Model
}

func metricLosses(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var losses []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct {
			Loss    float64  `json:"loss"`
			ValLoss *float64 `json:"val_loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if row.ValLoss == nil {
			losses = append(losses, row.Loss)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return losses
}

// TestFlowLayoutTrainsWithSegmentsExportsAndSamples runs the pipeline on a
// flow-layout dataset: segments are re-encoded from an empty flow table,
// sampling decodes through the flow grammar, and every sampled packet is a
// whole IP packet with valid TCP flags.
func TestFlowLayoutTrainsWithSegmentsExportsAndSamples(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	runOK(t, "-q", "tokenize", "--layout", "flow", "-o", data, projectCaptures(t))
	if info := runOK(t, "dataset", "info", data); !strings.Contains(info, "layout flow") || !strings.Contains(info, "tokens per packet") {
		t.Fatalf("dataset info does not report the flow layout and tokens per packet:\n%s", info)
	}
	out := filepath.Join(dir, "run")
	runOK(t, "-q", "train", "--data", data, "--val-frac", "0", "--preset", "tiny", "--ctx", "64", "--batch", "2",
		"--segment", "128", "--eval-every", "0", "--seed", "3", "--steps", "3", "--out", out)
	if msg, code := runCLI(t, nil, "-q", "train", "--data", data, "--remap-addresses", "--out", filepath.Join(dir, "x")); code != 2 {
		t.Fatalf("train --remap-addresses on a flow dataset: exit %d, want 2:\n%s", code, msg)
	}
	bundle := filepath.Join(dir, "bundle")
	runOK(t, "-q", "export", out, "-o", bundle)
	pcap := filepath.Join(dir, "synthetic.pcap")
	runOK(t, "-q", "sample", "--model", bundle, "--label", "web", "--packets", "40", "--ignore-eos", "--seed", "1", "-o", pcap)
	r, err := capture.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || p.IP == nil {
			t.Fatalf("sampled packet %d: %v (IP %x)", n, err, p.IP)
		}
		spec := tokenizer.FlowSpec()
		if l := spec.Keep(p.IP); !l.Complete || l.Malformed {
			t.Fatalf("sampled packet %d %x: not a whole header (%+v)", n, p.IP, l)
		} else if l.Proto == tokenizer.ProtoTCP && !tokenizer.TCPFlagsValid(p.IP[l.IPHdrLen+13]) {
			t.Fatalf("sampled packet %d: TCP flags %#02x", n, p.IP[l.IPHdrLen+13])
		}
		n++
	}
	if n != 40 {
		t.Fatalf("sample wrote %d packets, asked for 40", n)
	}
}
