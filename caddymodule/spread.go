package caddymodule

import (
	"sync"
	"time"
)

// A clearance is bound to a device cookie and a User-Agent, both of which
// a solver can hand to a fleet. A person's device moves between a few
// networks in an hour (home, mobile, office); a clearance used from more
// than spreadLimit address blocks within spreadWindow is shared, and this
// instance stops honouring it: the device is scored again, which for a
// bot means a new challenge.
const (
	spreadLimit  = 3
	spreadWindow = time.Hour
)

// networks are the address blocks one cleared device was seen from.
type networks struct {
	mu      sync.Mutex
	ids     [spreadLimit]string
	n       int
	revoked bool
}

// clearanceSpread records that device's clearance was presented from
// ipID and reports whether it has now been seen from too many networks.
// It is per instance (no store round trip on the cleared path).
func (h *Handler) clearanceSpread(device, ipID string) bool {
	n, ok := h.spread.Get(device)
	if !ok {
		n = &networks{n: 1}
		n.ids[0] = ipID
		h.spread.Put(device, n)
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.revoked {
		return true
	}
	for _, id := range n.ids[:n.n] {
		if id == ipID {
			return false
		}
	}
	if n.n < spreadLimit {
		n.ids[n.n] = ipID
		n.n++
		return false
	}
	n.revoked = true
	return true
}
