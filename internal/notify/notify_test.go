package notify

import "testing"

func TestNotifyCoalescesAndNeverBlocks(t *testing.T) {
	var h Hub
	a, b := h.Subscribe(), h.Subscribe()
	for range 3 {
		h.Notify() // a full buffer must not block the sender
	}
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b} {
		select {
		case <-ch:
		default:
			t.Fatalf("subscriber %s got no signal", name)
		}
		select {
		case <-ch:
			t.Fatalf("subscriber %s got a second signal: signals must coalesce", name)
		default:
		}
	}
}

func TestCloseClosesSubscribers(t *testing.T) {
	var h Hub
	before := h.Subscribe()
	h.Close()
	h.Close() // twice is safe
	if _, ok := <-before; ok {
		t.Fatal("channel subscribed before Close is still open")
	}
	if _, ok := <-h.Subscribe(); ok {
		t.Fatal("channel subscribed after Close is open")
	}
	h.Notify() // no panic on closed channels
}
