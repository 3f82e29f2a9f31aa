#!/usr/bin/env python3
"""How often a new flow reuses an address of the flows already in the table.

    python3 scripts/new-flow-addresses.py CAPTURE...

Replays each capture through a most-recently-used table of 64 flows (the
flow layout's table: 5-tuples, both directions one flow; tshark reads the
fields) and, for every packet that opens a flow, checks whether its source
and destination addresses belong to a flow in the table at that moment.
Prints the share of new flows with at least one such address and with both:
how often a flow-layout `<flow:new>` packet could name a host the trace has
already seen (spec version 3 does so with its address table,
docs/flow-layout.md) rather than spell it out. Needs tshark."""
import collections
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

TABLE = 64
FIELDS = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]


def packets(path):
    """(src, dst, proto, sport, dport) of each IP packet, outer header."""
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = [x.split(";")[0] for x in line.split(",")]
        if len(f) < len(FIELDS):
            continue
        src, dst = f[0] or f[2], f[1] or f[3]
        if src and dst:
            yield src, dst, f[4] or f[5], f[6] or f[8], f[7] or f[9]


def new_flows(path):
    """New flows, and how many of them reuse one or both addresses."""
    table = collections.OrderedDict()
    new = one = both = 0
    for src, dst, proto, sp, dp in packets(path):
        key = (proto,) + tuple(sorted([(src, sp), (dst, dp)]))
        if key in table:
            table.move_to_end(key)
            continue
        known = {a for k in table for a in (k[1][0], k[2][0])}
        hits = (src in known) + (dst in known)
        new, one, both = new + 1, one + (hits >= 1), both + (hits == 2)
        table[key] = True
        if len(table) > TABLE:
            table.popitem(last=False)
    return new, one, both


def main():
    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(new_flows, sys.argv[1:]))
    n, one, both = (sum(r[i] for r in res) for i in range(3))
    if n == 0:
        sys.exit("no flows in the captures given")
    print(f"{len(res)} captures, {n} new flows: an address already in the table {one / n:.3f}, both {both / n:.3f}")


if __name__ == "__main__":
    main()
