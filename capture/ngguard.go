package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxBlockLen bounds a pcapng block; pcapgo allocates what a block claims, so
// impossible lengths are refused before they reach it.
const maxBlockLen = 16 << 20

// ngGuard passes a pcapng stream through while following its block
// structure. It reads each block's first bytes whole, refuses impossible
// block lengths and captured lengths that do not fit their block, and
// rewrites an interface's snap length above maxSnapLen to 0 ("no limit") so
// that pcapgo sizes its buffer by each packet instead of by the header.
type ngGuard struct {
	r       io.Reader
	order   binary.ByteOrder
	pending []byte // header bytes checked and not yet delivered
	body    int    // bytes of the current block still to pass through
	hdr     [28]byte
	blocks  int
	err     error
}

func newNgGuard(r io.Reader) *ngGuard {
	return &ngGuard{r: r, order: binary.LittleEndian}
}

func (g *ngGuard) Read(p []byte) (int, error) {
	if len(g.pending) == 0 && g.body == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if err := g.nextBlock(); err != nil {
			g.err = err
			if len(g.pending) == 0 {
				return 0, err
			}
		}
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if len(p) > g.body {
		p = p[:g.body]
	}
	n, err := g.r.Read(p)
	g.body -= n
	if errors.Is(err, io.EOF) && g.body > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		g.err = err
	}
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// nextBlock reads and checks the next block's header into pending. A block
// that fails a check is withheld whole: pcapgo must never see its lengths.
func (g *ngGuard) nextBlock() error {
	h := g.hdr[:]
	n, err := io.ReadFull(g.r, h[:8])
	if err != nil {
		g.pending = h[:n]
		if n == 0 {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	have := 8
	if binary.BigEndian.Uint32(h[0:4]) == 0x0a0d0d0a { // section header: byte order first
		if n, err := io.ReadFull(g.r, h[8:12]); err != nil {
			g.pending = h[:8+n]
			return io.ErrUnexpectedEOF
		}
		have = 12
		switch binary.BigEndian.Uint32(h[8:12]) {
		case 0x1a2b3c4d:
			g.order = binary.BigEndian
		case 0x4d3c2b1a:
			g.order = binary.LittleEndian
		default:
			g.pending = nil
			return fmt.Errorf("pcapng block %d: bad byte-order magic", g.blocks)
		}
	}
	typ := g.order.Uint32(h[0:4])
	blen := int(g.order.Uint32(h[4:8]))
	if blen < 12 || blen%4 != 0 || blen > maxBlockLen {
		g.pending = nil
		return fmt.Errorf("pcapng block %d: impossible block length %d", g.blocks, blen)
	}
	want := min(len(h), blen)
	if n, err := io.ReadFull(g.r, h[have:want]); err != nil {
		g.pending = h[:have+n]
		return io.ErrUnexpectedEOF
	}
	switch typ {
	case 1: // interface description: snap length at 12..16
		if blen >= 16 && g.order.Uint32(h[12:16]) > maxSnapLen {
			g.order.PutUint32(h[12:16], 0)
		}
	case 2, 6: // obsolete / enhanced packet: captured length at 20..24
		if blen < 32 {
			g.pending = nil
			return fmt.Errorf("pcapng block %d: packet block of %d bytes is too short", g.blocks, blen)
		}
		if c := int(g.order.Uint32(h[20:24])); c > blen-32 {
			g.pending = nil
			return fmt.Errorf("pcapng block %d: captured length %d does not fit its %d-byte block", g.blocks, c, blen)
		}
	case 3: // simple packet: original length at 8..12, captured up to the block
		if blen < 16 {
			g.pending = nil
			return fmt.Errorf("pcapng block %d: simple packet block of %d bytes is too short", g.blocks, blen)
		}
		if l := int(g.order.Uint32(h[8:12])); l > maxSnapLen && l > blen-16 {
			g.pending = nil
			return fmt.Errorf("pcapng block %d: simple packet of %d bytes in a %d-byte block", g.blocks, l, blen)
		}
	}
	g.pending = h[:want]
	g.body = blen - want
	g.blocks++
	return nil
}
