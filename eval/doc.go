// Package eval owns netssm's judgement of generated traffic: how close a set
// of synthetic captures is to a set of real ones. It works on any captures
// (netssm's, NetShare's, NetDiffusion's), read through package capture, and
// writes a report directory:
//
//	report.md      human-readable: tables, what each figure means, plots embedded
//	metrics.json   every figure, under stable keys (see Report)
//	plots/         PNG and SVG figures, and figures.json, the data behind them
//	               (netssm-cli plot redraws single figures from it)
//
// What is measured:
//
//   - Statistical fidelity, per label and pooled: Jensen–Shannon divergence
//     (bits), total variation and Hellinger distance (gonum/stat) over binned
//     wire length, IP protocol, TTL/hop limit, TCP flags, TCP window, ports
//     (well-known exact, others in 1024-port buckets), inter-arrival time (log
//     bins); Wasserstein-1 (gonum/stat) for wire length (bytes) and log10
//     inter-arrival; and at flow level (bidirectional 5-tuples, no idle
//     timeout; one flow per 5-tuple per trace): flows per trace, packets and
//     bytes per flow, flow duration, concurrent flows seen by each packet.
//   - Protocol compliance of each side (Compliance): parse rates, IPv4 header
//     checksums, length consistency, reserved bits, TCP flag legality (the
//     tokenizer's rule, tokenizer.TCPFlagsValid), in-order handshakes,
//     sequence/acknowledgement consistency, timestamp sanity. Fixed checks
//     hold a bound every real stack meets; relative checks (rates real
//     traffic misses too) judge the synthetic side against the real side's
//     rate with a stated margin (RelativeMissFactor, RelativeMissSlack), so
//     a broken generator fails loudly and real traffic is never called
//     non-compliant for being real.
//   - Flow structure (FlowStructureReport), per label and pooled: flows and
//     distinct IP addresses among the first Options.FlowWindow IP packets of
//     each trace, TCP packets per TCP flow, the share of single-packet
//     flows; and the label-confusion matrix (LabelConfusion): mean JSD of
//     every synthetic label against every real label.
//   - Malformed frames (Malformed): what tshark marks _ws.malformed, when
//     Options.Tshark names it.
//   - Downstream utility (Utility): a workload classifier over windows of
//     traffic, trained on synthetic and tested on real (TSTR) against trained
//     and tested on real (TRTR). The learner is multinomial logistic
//     regression whose weights gonum/optimize (L-BFGS) fits; a maintained
//     optimiser does the fitting, this package only states the softmax loss.
//   - Privacy (Privacy, with training captures): verbatim header copies via a
//     hashed exact-match set, and the distance to the closest training record
//     by a bounded brute-force search, against held-out real packets.
//
// metrics.json is a Report: schema, inputs (files, packet counts per label),
// fidelity.pooled and fidelity.per_label.LABEL (metrics.KEY.{jsd, tv,
// hellinger, wasserstein1, n_real, n_synth} and their means), compliance.real
// and compliance.synth (each share as {hits, total, value}, the checks, each
// with its kind, bound and, on the synthetic side, the real reference share,
// and a pass verdict; per_label the same for each label), flow_structure
// (window_packets, pooled and per_label.LABEL, each {real, synth} with
// flows_per_window, addresses_per_window, tcp_packets_per_tcp_flow,
// single_packet_flows), label_confusion (real_labels, rows[]: synth_label,
// mean_jsd by real label, closest_real, own_is_closest; own_closest of
// compared), utility (trtr, tstr: accuracy, macro_f1, per_label_f1),
// privacy (with per_label verbatim shares), malformed, figures (docs/eval.md
// says what each figure means). Metric keys: wire_len, ip_proto, ttl, tcp_flags,
// tcp_window, port, inter_arrival, flows_per_trace, flow_packets, flow_bytes,
// flow_duration, concurrent_flows. A key changes only with SchemaVersion.
//
// Fidelity metrics read IP packets only (what a generator emits; the link
// layer is a nuisance that differs between captures). Inter-arrival times are
// between successive IP packets of one trace, in file order.
//
// This package must not touch model training, sampling or tokenisation (it
// shares only the TCP flag rule with package tokenizer), and writes nothing
// outside the report directory it is given.
package eval
