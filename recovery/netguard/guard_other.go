//go:build !linux

package netguard

import (
	"context"
	"errors"

	"github.com/tfsite/tfsite/internal/probe"
)

// errUnsupported: netguard needs Linux (netlink, raw sockets).
var errUnsupported = errors.New("netguard needs Linux")

type unsupported struct{}

func (unsupported) Snapshot() (*State, error)                 { return nil, errUnsupported }
func (unsupported) Converge(*State, []string) error           { return errUnsupported }
func (unsupported) ARP(context.Context, probe.Target) error   { return errUnsupported }
func (unsupported) Reach(context.Context, probe.Target) error { return errUnsupported }
func defaultKernel() (Kernel, Prober)                         { return unsupported{}, unsupported{} }
