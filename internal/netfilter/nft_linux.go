//go:build linux

package netfilter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// The few nf_tables requests iptables-restore cannot make: whether the
// family's table "nat" and its base chains exist (iptables-nft-save prints
// all four built-in chains whether they exist or not), and deleting the
// table once it is empty. Plain netlink (include/uapi/linux/netfilter/
// nf_tables.h), in the calling thread's network namespace.

// nftFamily is the nf_tables family iptables-nft uses for f.
func nftFamily(f Family) uint8 {
	if f == IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// nftCreates lists what an iptables-nft install into f's nat table would
// create: the table and the base chains PREROUTING and OUTPUT, whichever
// do not exist now.
func nftCreates(f Family) ([]string, error) {
	var out []string
	ok, err := nftExists(f, unix.NFT_MSG_GETTABLE, nlString(unix.NFTA_TABLE_NAME, "nat"))
	if err != nil {
		return nil, err
	}
	if !ok {
		out = append(out, CreatedTable)
	}
	for _, c := range []string{"PREROUTING", "OUTPUT"} {
		ok, err := nftExists(f, unix.NFT_MSG_GETCHAIN, append(nlString(unix.NFTA_CHAIN_TABLE, "nat"), nlString(unix.NFTA_CHAIN_NAME, c)...))
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, baseChainCreated[c])
		}
	}
	return out, nil
}

func nftExists(f Family, msg uint16, attrs []byte) (bool, error) {
	err := nftTalk(false, nftFamily(f), nftMessage{msg, 0, attrs})
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return err == nil, err
}

// errNotEmpty is the kernel's answer to deleting a table that still holds
// something.
var errNotEmpty = unix.EBUSY

// nftDropChainAndEmptyTable deletes chain (with its rules) and f's table
// "nat" in one transaction, the table only if nothing else is left in it
// (NLM_F_NONREC: the kernel checks, atomically, and answers EBUSY
// otherwise, undoing both). A chain or table already gone is not an error.
func nftDropChainAndEmptyTable(f Family, chain string) error {
	delChain := nftMessage{unix.NFT_MSG_DELCHAIN, 0, append(nlString(unix.NFTA_CHAIN_TABLE, "nat"), nlString(unix.NFTA_CHAIN_NAME, chain)...)}
	delTable := nftMessage{unix.NFT_MSG_DELTABLE, unix.NLM_F_NONREC, nlString(unix.NFTA_TABLE_NAME, "nat")}
	err := nftTalk(true, nftFamily(f), delChain, delTable)
	if errors.Is(err, unix.ENOENT) {
		err = nftTalk(true, nftFamily(f), delTable)
	}
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// nftMessage is one nf_tables request.
type nftMessage struct {
	msg, flags uint16
	attrs      []byte
}

// nftTalk sends nf_tables requests (inside one batch, one transaction,
// when batch is set: changes must be) and returns the kernel's first
// error, or nil when it acknowledged every request.
func nftTalk(batch bool, family uint8, msgs ...nftMessage) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("open a netfilter netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10}); err != nil {
		return fmt.Errorf("set the netlink socket's timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind a netfilter netlink socket: %w", err)
	}
	// Sequence numbers: 1 for the batch's start, 2… for the requests.
	var req []byte
	if batch {
		req = nlMessage(req, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, 1, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	}
	pending := map[uint32]bool{}
	for i, m := range msgs {
		seq := uint32(2 + i)
		pending[seq] = true
		req = nlMessage(req, unix.NFNL_SUBSYS_NFTABLES<<8|m.msg, unix.NLM_F_REQUEST|unix.NLM_F_ACK|m.flags, seq, family, 0, m.attrs)
	}
	if batch {
		req = nlMessage(req, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, uint32(2+len(msgs)), unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send a netfilter netlink request: %w", err)
	}
	buf := make([]byte, 1<<16)
	for len(pending) > 0 {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("read the netfilter netlink answer: %w", err)
		}
		answers, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parse the netfilter netlink answer: %w", err)
		}
		for _, m := range answers {
			if !pending[m.Header.Seq] || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("short netlink error message")
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				// A refused request aborts the whole batch.
				return syscall.Errno(-errno)
			}
			delete(pending, m.Header.Seq)
		}
	}
	return nil
}

// nlMessage appends a netlink message with an nfgenmsg header to b.
func nlMessage(b []byte, typ, flags uint16, seq uint32, family uint8, resID uint16, attrs []byte) []byte {
	l := unix.NLMSG_HDRLEN + 4 + len(attrs)
	b = binary.NativeEndian.AppendUint32(b, uint32(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, family, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, resID)
	return append(b, attrs...)
}

// nlString is a NUL-terminated string attribute, padded to 4 bytes.
func nlString(typ uint16, s string) []byte {
	l := 4 + len(s) + 1
	b := binary.NativeEndian.AppendUint16(nil, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
