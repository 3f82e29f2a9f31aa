#!/usr/bin/env python3
"""Builds the flow-vs-v1 table of docs/results.md (section layouts) from two
scripts/shared-results.sh work directories (LAYOUT=v1 and LAYOUT=flow) and
the output of scripts/layout-bench.sh.

    python3 scripts/layout-table.py V1_DIR FLOW_DIR BENCH.txt [REFERENCE_DIR [NAME=DIR[:REPORT]...]]

Each work directory gives: train.txt (the final validation line: held-out
bits per packet over every held-out token; or fullval.txt, see val_bits),
report/metrics.json (eval of the
sampled traffic against the held-out captures, with --train for verbatim
headers). REFERENCE_DIR, if given, holds report/metrics.json of `eval` with
the training captures in place of synthetic ones (what a model that
reproduced its training data exactly would score against the held-out
captures); it becomes the last column. Each NAME=DIR[:REPORT] adds a column
NAME before it: the eval report DIR/REPORT/metrics.json (REPORT defaults to
report) and the held-out bits per packet of DIR's model, e.g. the flow model's
traffic sampled with another preset, or another flow-layout run."""
import json
import math
import re
import statistics
import sys


def val_bits(d):
    """Held-out bits per packet over every held-out token: train's final
    validation line, or else `netssm-cli train loss-by-offset --tokens 0`'s
    output saved as fullval.txt (nats/token times the tokens it scored, over
    the held-out packets of dataset-heldout.txt)."""
    try:
        m = re.search(r"validation loss ([\d.]+) nats/token \(([\d.]+) bits/packet\)", open(f"{d}/train.txt").read())
        if m:
            return float(m.group(2))
        m = re.search(r": (\d+) tokens, ([\d.]+) nats/token", open(f"{d}/fullval.txt").read())
        pk = re.search(r"(\d+) packets", open(f"{d}/dataset-heldout.txt").read())
        return float(m.group(2)) * int(m.group(1)) / int(pk.group(1)) / math.log(2)
    except (OSError, AttributeError):
        return None


def metrics(d, report="report"):
    return json.load(open(f"{d}/{report}/metrics.json"))


def check(m, name):
    c = check_share(m, name)
    return c["value"] if c else None


def check_share(m, name):
    """A compliance check's share of the synthetic side: value, hits, total."""
    for c in m["compliance"]["synth"].get("checks", []):
        if c["name"] == name:
            return c["share"]
    return m["compliance"]["synth"].get(name)


def with_count(c):
    return "{:.3f} ({}/{})".format(c["value"], c["hits"], c["total"]) if c and c.get("total") else "n/a (0 judged)"


def bench(path):
    out = {}
    for line in open(path):
        m = re.match(r"round \d+ (\w+) (train|generate batch \d+): .*?([\d.]+) packets/s", line)
        if m:
            out.setdefault((m.group(1), m.group(2)), []).append(float(m.group(3)))
    return {k: statistics.median(v) for k, v in out.items()}


def flows(m, side, label=None):
    fs = m["flow_structure"]
    return fs["pooled"][side] if label is None else fs["per_label"][label][side]


def share(x):
    return x["value"] if isinstance(x, dict) else x


def main():
    v1, flow, bench_path = sys.argv[1:4]
    M = {"v1": metrics(v1), "flow": metrics(flow)}
    cols = ["v1", "flow"]
    bits = {"v1": val_bits(v1), "flow": val_bits(flow)}
    for arg in sys.argv[5:]:
        name, spec = arg.split("=", 1)
        d, _, report = spec.partition(":")
        M[name], bits[name] = metrics(d, report or "report"), val_bits(d)
        cols.append(name)
    if len(sys.argv) > 4:
        M["ref"] = metrics(sys.argv[4])
        cols.append("ref")
    B = bench(bench_path)
    rows = []

    def row(name, f, fmt="{:.3f}", target=""):
        vals = []
        for l in cols:
            try:
                v = f(l)
                vals.append(fmt.format(v) if v is not None else "n/a")
            except (KeyError, TypeError, IndexError):
                vals.append("n/a")
        rows.append(f"| {name} | " + " | ".join(vals) + f" | {target} |")

    row("held-out bits per packet (every held-out token)", lambda l: bits.get(l), "{:.1f}", "flow ≤ 0.6× v1")
    row("training packets/s", lambda l: B.get((l, "train")), "{:.1f}", "flow ≥ 2× v1")
    row("generation packets/s, batch 1", lambda l: B.get((l, "generate batch 1")), "{:.1f}", "flow ≥ 2× v1")
    row("generation packets/s, batch 32", lambda l: B.get((l, "generate batch 32")), "{:.1f}", "flow ≥ 2× v1")
    row("pooled mean JSD", lambda l: M[l]["fidelity"]["pooled"]["mean_jsd"], "{:.3f}", "≤ 0.15")
    row("TSTR/TRTR accuracy", lambda l: M[l]["utility"]["tstr_to_trtr_accuracy"], "{:.2f}", "≥ 0.9")
    row("verbatim training headers", lambda l: share(M[l]["privacy"]["synth_header_verbatim"]), "{:.3f}", "≤ 0.05")
    row("TCP flows with monotone sequence numbers", lambda l: M[l]["compliance"]["synth"]["tcp_flows_seq_monotone"]["value"], "{:.3f}", "≥ 0.9 (real: {:.3f})".format(M["flow"]["compliance"]["real"]["tcp_flows_seq_monotone"]["value"]))
    row("TCP flag sets valid", lambda l: check(M[l], "tcp_flags_valid"), "{:.4f}", "1")
    row("TCP handshakes in order (of flows opening with SYN)", lambda l: with_count(check_share(M[l], "tcp_handshake_in_order")), "{}", "(real: {:.3f})".format(M["flow"]["compliance"]["real"]["tcp_handshake_in_order"]["value"]))
    row("tshark malformed frames", lambda l: M[l]["malformed"]["synth"]["frames"]["value"], "{:.4f}", "0 (real: {:.4f})".format(M["flow"]["malformed"]["real"]["frames"]["value"]))
    real = flows(M["flow"], "real")
    row("flows per 500 packets", lambda l: flows(M[l], "synth")["flows_per_window"], "{:.1f}", f"within 1.5× of real {real['flows_per_window']:.1f}")
    row("IP addresses per 500 packets", lambda l: flows(M[l], "synth")["addresses_per_window"], "{:.1f}", f"within 1.5× of real {real['addresses_per_window']:.1f}")
    row("TCP packets per TCP flow", lambda l: flows(M[l], "synth")["tcp_packets_per_tcp_flow"], "{:.1f}", f"≥ 10 (real {real['tcp_packets_per_tcp_flow']:.1f})")
    row("single-packet flows", lambda l: share(flows(M[l], "synth")["single_packet_flows"]), "{:.3f}", f"within 0.10 of real {share(real['single_packet_flows']):.3f}")
    row("labels closest to their own real label", lambda l: "{} of {}".format(M[l]["label_confusion"]["own_closest"], M[l]["label_confusion"]["compared"]), "{}", "all")
    head = ["training captures" if c == "ref" else c for c in cols]
    print("| | " + " | ".join(head) + " | target |")
    print("|---" * (len(head) + 2) + "|")
    print("\n".join(rows))
    per = [(M["flow"], "real")] + [(M[c], "synth") for c in cols]
    names = " | ".join(["real"] + head)
    print(f"\nPer label, flows / IP addresses per 500 packets and TCP packets per TCP flow ({names}):\n")
    print(f"| label | {names} |\n|---" + "|---" * len(per) + "|")
    for label in sorted(M["flow"]["flow_structure"]["per_label"]):
        cells = []
        for src, side in per:
            try:
                f = flows(src, side, label)
                tpf = f["tcp_packets_per_tcp_flow"]
                cells.append("{:.0f} / {:.0f} / {}".format(f["flows_per_window"], f["addresses_per_window"], "–" if tpf is None else f"{tpf:.1f}"))
            except (KeyError, TypeError):
                cells.append("n/a")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
