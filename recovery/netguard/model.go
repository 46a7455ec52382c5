package netguard

import (
	"slices"
	"sync"
)

// Model is a Kernel over an in-memory State: the host as netguard models
// it. Apply on a Model does what Validate predicts, so the guard's window
// logic, the agent and bring-up are tested against it where a real network
// namespace is not the point; it is the one kernel fake of the tests.
type Model struct {
	mu        sync.Mutex
	s         *State
	converged []Converged
	fail      func(want *State) error
}

// Converged is one Converge call a Model saw.
type Converged struct {
	State       *State
	RemoveLinks []string
}

// NewModel returns a Model of the host s (copied).
func NewModel(s *State) *Model {
	if s == nil {
		s = &State{}
	}
	return &Model{s: s.Clone()}
}

// Refuse makes every later Converge ask fail first and fail with its
// error: a kernel refusing a change.
func (m *Model) Refuse(fail func(want *State) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = fail
}

// Set replaces the host as someone else's change would (not a Converge).
func (m *Model) Set(s *State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s = s.Clone()
}

// Snapshot implements Kernel.
func (m *Model) Snapshot() (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s.Clone(), nil
}

// Converge implements Kernel: the host becomes s.
func (m *Model) Converge(s *State, removeLinks []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		if err := m.fail(s); err != nil {
			return err
		}
	}
	m.converged = append(m.converged, Converged{State: s.Clone(), RemoveLinks: slices.Clone(removeLinks)})
	m.s = s.Clone()
	return nil
}

// State is the host now (a copy).
func (m *Model) State() *State {
	s, _ := m.Snapshot()
	return s
}

// Converged lists every Converge call so far, plan operations and reverts.
func (m *Model) Converged() []Converged {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.converged)
}
