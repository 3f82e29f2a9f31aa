package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// MetricsRow is one logged step in metrics.jsonl. Fields a step did not
// measure (val loss between evaluations) are omitted.
type MetricsRow struct {
	Step        int64    `json:"step"`
	Tokens      int64    `json:"tokens"`
	Loss        float64  `json:"loss"`
	ValLoss     *float64 `json:"val_loss,omitempty"`
	ValBitsPkt  *float64 `json:"val_bits_per_packet,omitempty"`
	Baseline    *float64 `json:"val_unigram_loss,omitempty"`
	ValFull     bool     `json:"val_full,omitempty"` // the validation read every held-out token (the final one)
	LR          float64  `json:"lr"`
	GradNorm    float64  `json:"grad_norm"`
	TokensPerS  float64  `json:"tokens_per_s"`
	ElapsedSecs float64  `json:"elapsed_s"`
}

// metricsLog appends rows to RUN_DIR/metrics.jsonl, one JSON object a line,
// flushed after each row so a killed run keeps what it logged.
type metricsLog struct {
	f *os.File
}

func openMetrics(path string, truncateAfter int64) (*metricsLog, error) {
	// On resume, drop rows logged after the checkpoint being resumed, so the
	// file tells one consistent history.
	if truncateAfter >= 0 {
		rows, err := ReadMetrics(path)
		if err == nil {
			tmp := path + ".tmp"
			f, err := os.Create(tmp)
			if err != nil {
				return nil, err
			}
			w := bufio.NewWriter(f)
			enc := json.NewEncoder(w)
			for _, r := range rows {
				if r.Step <= truncateAfter {
					enc.Encode(r)
				}
			}
			w.Flush()
			f.Close()
			if err := os.Rename(tmp, path); err != nil {
				return nil, err
			}
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening metrics: %w", err)
	}
	return &metricsLog{f: f}, nil
}

func (m *metricsLog) write(r MetricsRow) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = m.f.Write(append(b, '\n'))
	return err
}

func (m *metricsLog) Close() error { return m.f.Close() }

// ReadMetrics reads a run's metrics.jsonl.
func ReadMetrics(path string) ([]MetricsRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	defer f.Close()
	var rows []MetricsRow
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r MetricsRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return rows, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// UnigramBaseline is the cross-entropy (nats/token) of val's next tokens under
// the token frequencies of train (add-one smoothed over the vocabulary): the
// loss of a model that knows byte frequencies and nothing else.
func UnigramBaseline(train, val TraceStore, vocab int) (float64, error) {
	counts := make([]float64, vocab)
	total := 0.0
	for i := 0; i < train.NumTraces(); i++ {
		toks, err := train.TraceTokens(i)
		if err != nil {
			return 0, err
		}
		for _, t := range toks[min(1, len(toks)):] {
			if int(t) < vocab {
				counts[t]++
				total++
			}
		}
	}
	nll, n := 0.0, 0.0
	for i := 0; i < val.NumTraces(); i++ {
		toks, err := val.TraceTokens(i)
		if err != nil {
			return 0, err
		}
		for _, t := range toks[min(1, len(toks)):] {
			c := 1.0
			if int(t) < vocab {
				c += counts[t]
			}
			nll -= math.Log(c / (total + float64(vocab)))
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("the validation set has no tokens")
	}
	return nll / n, nil
}
