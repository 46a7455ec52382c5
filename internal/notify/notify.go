// Package notify fans a coalesced "something changed" signal out to
// subscribers, for level-triggered loops: a receiver re-reads the state it
// cares about, so one pending signal per subscriber is enough and a sender
// never blocks.
package notify

import "sync"

// Hub is ready to use as its zero value. Its methods are safe for concurrent use.
type Hub struct {
	mu     sync.Mutex
	subs   []chan struct{}
	closed bool
}

// Subscribe returns a channel that receives at least once after every Notify
// that follows, and is closed by Close (at once, if the hub is closed already).
func (h *Hub) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch
	}
	h.subs = append(h.subs, ch)
	return ch
}

// Notify wakes every subscriber without blocking; signals coalesce.
func (h *Hub) Notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Close closes every subscriber's channel. Safe to call twice.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for _, ch := range h.subs {
		close(ch)
	}
	h.subs = nil
}
