package console

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// access says when an entry asks for the recovery password.
type access int

const (
	// open entries never ask: they only show or collect.
	open access = iota
	// recovery entries (network recovery) ask once a password is set and
	// run without one: a first boot without a password can still undo a
	// network change, never reach a shell.
	recovery
	// protected entries ask, and are refused while no password is set.
	protected
)

// mark is the menu's sign for each kind of entry.
func (a access) mark() string {
	switch a {
	case recovery:
		return " +"
	case protected:
		return " *"
	}
	return ""
}

type entry struct {
	key, label string
	access     access
	run        func(c *Console, ctx context.Context) error // nil: exit
}

// menu is the one table the menu is drawn from and `tfsite console --help`
// lists (MenuHelp).
var menu = []entry{
	{"1", "Status", open, (*Console).status},
	{"2", "Network details", open, (*Console).network},
	{"3", "Roll back network change", recovery, (*Console).rollback},
	{"4", "Reset underlay to DHCP", recovery, (*Console).resetUnderlay},
	{"5", "Static address/gateway", protected, (*Console).static},
	{"6", "Ping / traceroute", open, (*Console).ping},
	{"7", "Add an SSH authorized key", protected, (*Console).addKey},
	{"8", "Set the console password", protected, (*Console).setPassword},
	{"9", "Write a support bundle", open, (*Console).bundle},
	{"10", "Shell", protected, (*Console).shell},
	{"11", "Reboot", protected, (*Console).reboot},
	{"12", "Update tfsite (A/B, signed)", protected, (*Console).update},
	{"0", "Exit", open, nil},
}

// legend explains the marks, under the menu and in the help.
var legend = []string{"* asks for the recovery password", "+ asks for it once one is set"}

func entryFor(key string) (entry, bool) {
	for _, e := range menu {
		if e.key == key {
			return e, true
		}
	}
	return entry{}, false
}

func label(e entry) string { return fmt.Sprintf("%3s) %s%s", e.key, e.label, e.access.mark()) }

// MenuHelp lists the menu's entries as the menu shows them, one a line
// with the legend, for `tfsite console --help`.
func MenuHelp() string {
	var b strings.Builder
	for _, e := range menu {
		fmt.Fprintf(&b, "  %s\n", label(e))
	}
	for _, l := range legend {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}

// drawMenu shows the menu in two columns (80x24 is enough).
func (c *Console) drawMenu() {
	c.clear()
	head := "tfsite recovery console"
	if c.agent != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if st, err := c.agent.Status(sctx); err == nil {
			head += fmt.Sprintf(" - site %s (%s)", st.Site, st.Phase)
		}
		cancel()
	}
	host, _ := os.Hostname()
	c.printf("%s\r\n%s\r\n\r\n", clip(head, 79), clip("host "+host, 79))
	half := (len(menu) + 1) / 2
	for i := range half {
		right := ""
		if i+half < len(menu) {
			right = label(menu[i+half])
		}
		c.printf("%s\r\n", strings.TrimRight(fmt.Sprintf("%-40s%s", label(menu[i]), right), " "))
	}
	c.printf("\r\n")
	for _, l := range legend {
		c.printf("%40s%s\r\n", "", l)
	}
	if c.noPassword {
		c.printf("No recovery password is set: entries marked * stay closed (docs/recovery.md).\r\n")
	}
	c.printf("\r\nEnter a number: ")
}
