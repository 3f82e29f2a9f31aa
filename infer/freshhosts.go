package infer

import (
	"sync"

	"github.com/netssm/netssm/capture/cryptopan"
)

// FreshHosts maps the source and destination address of every generated
// packet to its Crypto-PAn image under one key as the packet is written, so
// no host of the training captures appears in the output while subnets stay
// subnets (two addresses sharing a k-bit prefix map to two sharing exactly a
// k-bit prefix). One address always maps to the same one, so a flow keeps one
// address pair and both its directions agree. It acts on the decoded packets,
// whatever the token layout, and changes nothing but the address bytes (the
// IPv4 header checksum is recomputed after it by pcapout's check). Safe for
// concurrent use.
type FreshHosts struct {
	mu sync.Mutex
	an *cryptopan.Anonymizer
}

// NewFreshHosts maps addresses with an.
func NewFreshHosts(an *cryptopan.Anonymizer) *FreshHosts {
	return &FreshHosts{an: an}
}

// Map rewrites the addresses of one IP packet in place; it reports false for
// bytes too short to hold an IPv4 or IPv6 header's addresses (left as they
// are).
func (f *FreshHosts) Map(ip []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.an.Addresses(ip)
}

// Before returns a PacketCheck that maps a packet's addresses and then runs
// check (nil: none, the original length read from the IP header).
func (f *FreshHosts) Before(check PacketCheck) PacketCheck {
	return func(ip []byte) (int, bool, error) {
		f.Map(ip)
		if check == nil {
			return ipLength(ip), false, nil
		}
		return check(ip)
	}
}
