package config

import "github.com/tfsite/tfsite/agent/alloc"

// Pools are the allocation pools; the type and its validation belong to
// agent/alloc (see docs/allocation.md).
type Pools = alloc.Pools

// DefaultPools returns alloc's defaults, derived from Tungsten Fabric's ranges.
func DefaultPools() Pools { return alloc.DefaultPools() }
