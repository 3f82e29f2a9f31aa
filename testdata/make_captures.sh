#!/usr/bin/env bash
# make_captures.sh — make netssm's small test captures with real programs.
#
# What it does: builds two network namespaces joined by a veth pair
# (nss-srv 10.77.0.1 / fd77::1, nss-cli 10.77.0.2 / fd77::2), runs real
# servers in nss-srv (python3 -m http.server, dnsmasq) and real clients in
# nss-cli (curl, dig, ping, a paced UDP sender), and captures the traffic
# with tcpdump inside nss-cli. No packet leaves the two namespaces.
#
# Output (testdata/captures/LABEL/FILE; the directory name is the label):
#   web/http_curl.pcap          Ethernet pcap, HTTP over IPv4+IPv6, ICMP echo, snap 128
#   web/http_curl_sll.pcap      Linux cooked v1 (tcpdump -i any -y LINUX_SLL), snap 128
#   dns/dig_sll2.pcap           Linux cooked v2 (tcpdump -i any), DNS over UDP+TCP, v4+v6
#   dns/dig_veth.pcapng         pcapng (editcap -F pcapng of an Ethernet capture)
#   udp_stream/stream_v4.pcapng pcapng, 50 pkt/s RTP-sized UDP stream over IPv4
#   udp_stream/stream_v6.pcap   Ethernet pcap, the same over IPv6
# Each file stays well under 200 KB.
#
# Needs: root (ip netns), iproute2, tcpdump, editcap (wireshark-common), curl,
# dig (bind9-dnsutils), dnsmasq (dnsmasq-base), python3, ping (iputils-ping).
# On Debian: apt-get install iproute2 tcpdump wireshark-common curl
#            bind9-dnsutils dnsmasq-base python3 iputils-ping
# Run from anywhere: bash testdata/make_captures.sh
# Timing and ports differ between runs; the structure does not.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/captures"
work="$(mktemp -d)"
SRV=nss-srv CLI=nss-cli

cleanup() {
	set +e
	for p in $(jobs -p); do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns pids "$SRV" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns pids "$CLI" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$SRV" 2>/dev/null
	ip netns del "$CLI" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

for t in ip tcpdump editcap curl dig dnsmasq python3 ping; do
	command -v "$t" >/dev/null || { echo "make_captures.sh: $t is missing (see the header for packages)" >&2; exit 1; }
done

ip netns add "$SRV"
ip netns add "$CLI"
ip link add veth-srv netns "$SRV" type veth peer name veth-cli netns "$CLI"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" addr add 10.77.0.1/24 dev veth-srv
ip -n "$CLI" addr add 10.77.0.2/24 dev veth-cli
ip -n "$SRV" addr add fd77::1/64 dev veth-srv nodad
ip -n "$CLI" addr add fd77::2/64 dev veth-cli nodad
ip -n "$SRV" link set veth-srv up
ip -n "$CLI" link set veth-cli up
# no checksum offload: what is captured is what a NIC would send
ip netns exec "$SRV" ethtool -K veth-srv tx off >/dev/null 2>&1 || true
ip netns exec "$CLI" ethtool -K veth-cli tx off >/dev/null 2>&1 || true
sleep 1

# --- servers -------------------------------------------------------------
mkdir -p "$work/www"
python3 - "$work/www" <<'PY'
import os, random, sys
random.seed(7)
d = sys.argv[1]
open(os.path.join(d, "index.html"), "w").write("<html><body>" + "netssm test page " * 40 + "</body></html>\n")
for i, n in enumerate([2_000, 9_000, 30_000, 60_000]):
    open(os.path.join(d, f"blob{i}.bin"), "wb").write(bytes(random.getrandbits(8) for _ in range(n)))
PY
ip netns exec "$SRV" python3 -m http.server 8080 --bind :: --directory "$work/www" >/dev/null 2>&1 &
hosts=()
for i in $(seq 1 30); do hosts+=(--host-record="host$i.netssm.test,10.77.1.$i,fd77:1::$i"); done
ip netns exec "$SRV" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
	--listen-address=10.77.0.1 --listen-address=fd77::1 --port=53 \
	--address=/web.netssm.test/10.77.0.1 "${hosts[@]}" --pid-file="$work/dnsmasq.pid" >/dev/null 2>&1 &
sleep 1.5

capture() { # capture NAME TCPDUMP-ARGS... : starts tcpdump in nss-cli writing $work/NAME
	local name=$1; shift
	ip netns exec "$CLI" tcpdump -n -U --immediate-mode -w "$work/$name" "$@" >>"$work/tcpdump.log" 2>&1 &
	echo $! >"$work/$name.pid"
	sleep 2
}
stop() { # stop NAME (after the ring buffer has drained)
	sleep 1.5
	kill -INT "$(cat "$work/$1.pid")"
	wait "$(cat "$work/$1.pid")" 2>/dev/null || true
}
C() { ip netns exec "$CLI" "$@"; }

# --- web -----------------------------------------------------------------
web_session() {
	C ping -c 3 -i 0.2 10.77.0.1 >/dev/null
	C ping -6 -c 2 -i 0.2 fd77::1 >/dev/null
	for f in index.html blob0.bin blob1.bin blob2.bin; do C curl -s -4 -o /dev/null "http://10.77.0.1:8080/$f"; sleep 0.1; done
	C curl -s -6 -o /dev/null -o /dev/null "http://[fd77::1]:8080/index.html" "http://[fd77::1]:8080/blob3.bin"
	C curl -s -4 -o /dev/null "http://10.77.0.1:8080/missing.html" || true
	C curl -s -4 -o /dev/null --limit-rate 20k "http://10.77.0.1:8080/blob1.bin"
}
capture http_curl.pcap -i veth-cli -s 128 'tcp port 8080 or icmp or icmp6'
web_session
stop http_curl.pcap
capture http_curl_sll.pcap -i any -y LINUX_SLL -s 128 'tcp port 8080'
for f in index.html blob1.bin blob0.bin; do C curl -s -4 -o /dev/null "http://10.77.0.1:8080/$f"; done
C curl -s -6 -o /dev/null "http://[fd77::1]:8080/blob2.bin"
stop http_curl_sll.pcap

# --- dns -----------------------------------------------------------------
dns_session() {
	for i in $(seq 1 "$1"); do
		C dig +short +tries=1 +time=1 @10.77.0.1 "host$i.netssm.test" A >/dev/null || true
		C dig +short +tries=1 +time=1 @fd77::1 "host$i.netssm.test" AAAA >/dev/null || true
		sleep 0.05
	done
	C dig +tries=1 +time=1 @10.77.0.1 nothing-here.netssm.test A >/dev/null || true
	C dig +tcp +tries=1 +time=1 @10.77.0.1 web.netssm.test A >/dev/null || true
	C dig +tries=1 +time=1 @10.77.0.1 web.netssm.test MX >/dev/null || true
}
capture dig_sll2.pcap -i any 'port 53'
dns_session 30
stop dig_sll2.pcap
capture dig_veth.pcap -i veth-cli 'port 53'
dns_session 20
stop dig_veth.pcap

# --- udp_stream ----------------------------------------------------------
stream() { # stream DST FAMILY SECONDS: paced RTP-sized datagrams, both directions
	ip netns exec "$SRV" python3 - "$2" <<'PY' &
import socket, sys
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 5004))
s.settimeout(3)
n = 0
try:
    while True:
        data, peer = s.recvfrom(2048)
        n += 1
        if n % 10 == 0:  # RTCP-like receiver report every 10 packets
            s.sendto(b"\x81\xc9\x00\x07" + data[8:12] + bytes(24), peer)
except socket.timeout:
    pass
PY
	local srv=$!
	sleep 0.5
	C python3 - "$1" "$2" "$3" <<'PY'
import socket, struct, sys, time
dst, fam, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if fam == "6" else socket.AF_INET, socket.SOCK_DGRAM)
ssrc, seq, ts = 0x4e455453, 1000, 160000
t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < secs:
    hdr = struct.pack("!BBHII", 0x80, 0x60, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    s.sendto(hdr + bytes((seq * 7 + k) & 0xFF for k in range(160)), (dst, 5004))
    seq, ts, i = seq + 1, ts + 160, i + 1
    time.sleep(max(0.0, t0 + i * 0.02 - time.monotonic()))
PY
	wait "$srv" || true
}
capture stream_v4.pcap -i veth-cli -s 96 'udp port 5004'
stream 10.77.0.1 4 6
stop stream_v4.pcap
capture stream_v6.pcap -i veth-cli -s 96 'udp port 5004'
stream fd77::1 6 6
stop stream_v6.pcap

# --- publish ---------------------------------------------------------------
grep -E "captured|received" "$work/tcpdump.log" >&2
mkdir -p "$out/web" "$out/dns" "$out/udp_stream"
cp "$work/http_curl.pcap" "$work/http_curl_sll.pcap" "$out/web/"
cp "$work/dig_sll2.pcap" "$out/dns/"
editcap -F pcapng "$work/dig_veth.pcap" "$out/dns/dig_veth.pcapng"
editcap -F pcapng "$work/stream_v4.pcap" "$out/udp_stream/stream_v4.pcapng"
cp "$work/stream_v6.pcap" "$out/udp_stream/"
for f in "$out"/*/*; do
	size=$(stat -c %s "$f")
	if [ "$size" -gt 204800 ]; then echo "make_captures.sh: $f is $size bytes (> 200 KB)" >&2; exit 1; fi
	pkts=$(tcpdump -n -r "$f" 2>/dev/null | wc -l)
	if [ "$pkts" -lt 20 ]; then echo "make_captures.sh: $f has only $pkts packets" >&2; exit 1; fi
	printf '%-40s %7d bytes %5d packets\n' "${f#"$here"/}" "$size" "$pkts"
done
