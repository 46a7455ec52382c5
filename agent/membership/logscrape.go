package membership

// memberlist's log, routed to slog with a rate limit, and read for the
// suspect-state signal it gives nowhere else.

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// watchLog learns from memberlist's log what its API does not expose: that
// our probe of a node failed (the node is now suspect). memberlist v0.7.0
// has no supported signal for it: it keeps a node's state in its private
// nodeState (Node.State, which Members() and the events hand out, is never
// set), Members() lists alive and suspect nodes alike, no EventDelegate
// callback fires on suspicion, PingDelegate reports only acked probes, and
// the "memberlist.msg.suspect" metric carries no node name. So the line
// "Suspect NODE has failed, no acks received" (probeNode, state.go) is read;
// an ack (PingDelegate), a join/update/leave event, or the hold time ends
// the suspicion. TestSuspectFromFailedProbeEndsWithAck pins the line's
// form, so a memberlist upgrade that changes it fails the tests.
func (m *Membership) watchLog(line string) {
	const pre, post = "Suspect ", " has failed"
	if strings.HasPrefix(line, pre) {
		if i := strings.Index(line, post); i > len(pre) {
			m.mu.Lock()
			m.suspect[line[len(pre):i]] = time.Now()
			m.mu.Unlock()
			m.notify()
		}
	}
}

// logWriter maps memberlist's "[LEVEL] memberlist: ..." lines onto slog.
// Warnings and errors repeat in storms (e.g. "handler queue full" for every
// dropped packet); each kind is logged at most once per logEvery, with a
// count of what was suppressed.
type logWriter struct {
	log    *slog.Logger
	onLine func(string)

	mu   sync.Mutex
	last map[string]time.Time
	supp map[string]int
}

const logEvery = 10 * time.Second

// limit reports whether line may be logged now, and how many like it were
// suppressed since the last one.
func (w *logWriter) limit(line string) (bool, int) {
	key := line
	if i := strings.IndexAny(key, "0123456789:("); i > 0 {
		key = key[:i] // same kind regardless of addresses and counts
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last, w.supp = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if t, ok := w.last[key]; ok && now.Sub(t) < logEvery {
		w.supp[key]++
		return false, 0
	}
	if len(w.last) > 256 {
		clear(w.last)
	}
	n := w.supp[key]
	delete(w.supp, key)
	w.last[key] = now
	return true, n
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	lvl := slog.LevelInfo
	// Lines look like "2024/01/01 00:00:00 [DEBUG] memberlist: ...".
	if i := strings.Index(line, "["); i >= 0 {
		if j := strings.Index(line[i:], "]"); j > 0 {
			switch line[i+1 : i+j] {
			case "DEBUG", "TRACE":
				lvl = slog.LevelDebug
			case "WARN":
				lvl = slog.LevelWarn
			case "ERR", "ERROR":
				lvl = slog.LevelError
			}
			line = strings.TrimSpace(line[i+j+1:])
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if w.onLine != nil {
		w.onLine(line)
	}
	if !w.log.Enabled(context.Background(), lvl) {
		return len(p), nil
	}
	if lvl >= slog.LevelWarn {
		ok, n := w.limit(line)
		if !ok {
			return len(p), nil
		}
		if n > 0 {
			w.log.Log(context.Background(), lvl, line, "suppressed_similar", n)
			return len(p), nil
		}
	}
	w.log.Log(context.Background(), lvl, line)
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)
