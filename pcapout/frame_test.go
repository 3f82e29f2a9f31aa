package pcapout_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/pcapout"
)

// WriteFrame keeps each packet's own link header, in a file of that link
// type, and refuses a header where the file's link type has none.
func TestWriteFrameKeepsTheLinkHeaderGiven(t *testing.T) {
	ip := capturetest.IPv4UDP(a4, b4, 1, 2, []byte("payload"))
	for _, c := range []struct {
		link pcapout.Link
		hdr  []byte
		id   uint16
	}{
		{pcapout.LinkEthernet, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00}, capture.LinkTypeEthernet},
		{pcapout.LinkLinuxSLL, []byte{0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00}, capture.LinkTypeLinuxSLL},
	} {
		path := filepath.Join(t.TempDir(), "f.pcap")
		w, err := pcapout.Create(path, pcapout.Options{Link: c.link})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteFrame(time.Unix(1, 0), c.hdr, append([]byte(nil), ip...)); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		got := capturetest.IPPackets(t, path)
		if len(got) != 1 || got[0].LinkTypeID != c.id || got[0].LinkHdrLen != len(c.hdr) || !bytes.Equal(got[0].IP, ip) || got[0].WireLen != len(c.hdr)+len(ip) {
			t.Fatalf("%s: read back %+v", c.link, got)
		}
	}
	w, err := pcapout.Create(filepath.Join(t.TempDir(), "raw.pcap"), pcapout.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.WriteFrame(time.Unix(1, 0), make([]byte, 14), append([]byte(nil), ip...)); err == nil {
		t.Error("a raw-IP pcap took a link header")
	}
}
