package capture

import "fmt"

// LinkName names a LINKTYPE_ number the way datasets store it: ethernet,
// linux-sll, linux-sll2, raw (all raw-IP numbers), null, loop, or
// linktype-N.
func LinkName(lt uint16) string {
	switch lt {
	case LinkTypeEthernet:
		return "ethernet"
	case LinkTypeLinuxSLL:
		return "linux-sll"
	case LinkTypeLinuxSLL2:
		return "linux-sll2"
	case LinkTypeRaw, LinkTypeRawOld, LinkTypeRawOld2, LinkTypeIPv4, LinkTypeIPv6:
		return "raw"
	case LinkTypeNull:
		return "null"
	case LinkTypeLoop:
		return "loop"
	}
	return fmt.Sprintf("linktype-%d", lt)
}
