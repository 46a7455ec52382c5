// Package e2e holds the multi-process tests of the agent: every site is a
// real `tfsite agent` process in its own network namespace, all joined by a
// bridge in a hub namespace, driven and observed only through the CLI
// (`tfsite status --json`) and the sites' durable state. The tests need
// root (testrig.RequireRoot); the chaos test's long form runs with
// TFSITE_CHAOS_ROUNDS=N (make chaos ROUNDS=N).
package e2e
