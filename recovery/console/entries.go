package console

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/version"
	"github.com/tfsite/tfsite/recovery/netguard"
)

func (c *Console) lastEvent() string {
	if c.net == nil {
		return "netguard unavailable"
	}
	st, err := c.net.Show(1)
	if err != nil {
		return err.Error()
	}
	if len(st.Events) == 0 {
		return "none"
	}
	return netguard.FormatEvent(st.Events[0])
}

func (c *Console) status(ctx context.Context) error {
	if c.agent == nil {
		c.printf("agent: not configured\r\n")
	} else if st, err := c.agent.Status(ctx); err != nil {
		c.printf("agent: not reachable (%s)\r\n", clip(oneline.Of(err.Error()), 60))
	} else {
		c.printf("site     %s\r\nphase    %s\r\n", st.Site, st.Phase)
		if a := st.Allocation; a != nil {
			c.printf("ASN      %d\r\npods     %s\r\nservices %s\r\nfabric   %s\r\n", a.ASN, a.Pod, a.Service, a.Fabric)
		} else {
			c.printf("ASN      not allocated yet\r\n")
		}
		if u := st.Underlay; u != nil {
			c.printf("underlay %s %s via %s\r\n", u.Interface, u.Address, u.Gateway)
		}
		c.printf("peers    %d\r\n", len(st.Peers))
		for i, p := range st.Peers {
			if i == 6 {
				c.printf("  ... %d more\r\n", len(st.Peers)-i)
				break
			}
			c.printf("  %-20s %s\r\n", clip(p.Site, 20), p.State)
		}
		if b := st.BringUp; b != nil {
			c.printf("bring-up %s\r\n", clip(oneline.Of(b.Summary()), 70))
			// Each step, at most two lines of 76 columns: what a real
			// cluster's bring-up did (images, kubeadm init, TF, the cluster).
			for _, s := range b.Steps {
				mark := "ok"
				if !s.OK {
					mark = "--"
				}
				lines := strings.SplitN(wrap(fmt.Sprintf("%s %s: %s", mark, s.Name, oneline.Of(s.Detail)), 74), "\r\n", 3)
				for _, l := range lines[:min(len(lines), 2)] {
					c.printf("  %s\r\n", l)
				}
			}
			if d := b.Doing(time.Now()); d != "" {
				c.printf("  .. %s\r\n", clip(d, 72))
			}
			if v := b.Vrouter; v != nil && !v.Confirmed {
				c.printf("vrouter  REVERTED %s\r\n", clip(oneline.Of(v.Reason), 61))
			}
		}
		if st.LastError != "" {
			c.printf("error    %s\r\n", clip(oneline.Of(st.LastError), 70))
		}
	}
	c.printf("last network event:\r\n  %s\r\n", clip(c.lastEvent(), 77))
	return nil
}

func (c *Console) network(context.Context) error {
	if c.net == nil {
		return errors.New("netguard unavailable")
	}
	st, err := c.net.Show(3)
	if err != nil {
		return err
	}
	n := 0
	for _, l := range st.State.Links {
		var addrs []string
		for _, a := range st.State.AddressesOn(l.Name) {
			addrs = append(addrs, a.Address.String())
		}
		state := "down"
		if l.Up {
			state = "up"
		}
		c.printf("%s\r\n", clip(fmt.Sprintf("%-12s %-4s %s", l.Name, state, strings.Join(addrs, " ")), 79))
		if n++; n == 8 {
			break
		}
	}
	c.printf("routes:\r\n")
	n = 0
	for _, r := range st.State.Routes {
		if r.Kernel() {
			continue
		}
		c.printf("  %s\r\n", clip(r.String(), 77))
		if n++; n == 6 {
			break
		}
	}
	if st.Pending != nil {
		c.printf("pending: %s\r\n", clip(st.Pending.String(), 70))
	}
	for _, e := range st.Events {
		c.printf("  %s\r\n", clip(netguard.FormatEvent(e), 77))
	}
	return nil
}

func (c *Console) rollback(ctx context.Context) error {
	if c.net == nil {
		return errors.New("netguard unavailable")
	}
	_, e, err := c.net.Rollback(ctx)
	if errors.Is(err, netguard.ErrNothingPending) {
		c.printf("Nothing pending: no guarded network change is in its window.\r\n")
		return nil
	}
	if errors.Is(err, netguard.ErrCorrupt) {
		return c.damagedRecord()
	}
	if err != nil {
		return err
	}
	c.printf("%s\r\n", clip(netguard.FormatEvent(e), 79))
	return nil
}

// damagedRecord is the way out of a damaged pending record for an operator
// who may have no shell: its snapshot is restored when intact (what the boot
// unit does); with none the file is moved aside, so that the network reset
// entry can run.
func (c *Console) damagedRecord() error {
	c.printf("The record of the pending change is damaged.\r\n")
	p, err := c.net.Salvage()
	if err == nil {
		c.log.Warn("console: reverted a change from its damaged record", "tty", c.cfg.TTY, "id", p.ID)
		c.printf("Reverted %s from its intact snapshot; the damaged file is kept\r\nbeside it (`tfsite net show` lists the journal).\r\n", clip(p.ID, 40))
		return nil
	}
	if !errors.Is(err, netguard.ErrNoSnapshot) {
		return err
	}
	aside, err := c.net.SetAside("the console on " + c.cfg.TTY)
	if err != nil {
		return err
	}
	c.log.Warn("console: set a damaged pending record aside", "tty", c.cfg.TTY, "moved", aside)
	c.printf("It holds no readable snapshot: nothing could be reverted. It was moved\r\nto %s.\r\nIf the host is unreachable, use entry 4 (Reset underlay to DHCP).\r\n", clip(aside, 76))
	return nil
}

func (c *Console) static(ctx context.Context) error {
	if c.net == nil {
		return errors.New("netguard unavailable")
	}
	link, err := c.prompt(ctx, "Interface (e.g. eth0): ")
	if err != nil {
		return err
	}
	addr, err := c.prompt(ctx, "Address in CIDR form (e.g. 192.0.2.10/24): ")
	if err != nil {
		return err
	}
	gw, err := c.prompt(ctx, "Gateway (e.g. 192.0.2.1): ")
	if err != nil {
		return err
	}
	plan := &netguard.Plan{
		Description: "console: static " + addr + " via " + gw + " on " + link,
		Operations: []netguard.Operation{
			{Op: netguard.OpSetAddresses, Link: link, Addresses: []string{addr}},
			{Op: netguard.OpReplaceDefaultGW, Gateway: gw, Link: link},
		},
	}
	if b, err := json.Marshal(plan); err == nil {
		if plan, err = netguard.DecodePlan(b); err != nil {
			return err
		}
	}
	c.printf("Applying, guarded: kept if the gateway answers, else reverted...\r\n")
	out, err := c.net.Try(ctx, plan)
	if err != nil {
		return err
	}
	c.printf("Confirmed: %s\r\n", out.Reason)
	return nil
}

func (c *Console) resetUnderlay(ctx context.Context) error {
	if c.net == nil {
		return errors.New("netguard unavailable")
	}
	def := ""
	if c.agent != nil {
		if st, err := c.agent.Status(ctx); err == nil && st.Underlay != nil {
			def = st.Underlay.Interface
		}
	}
	iface, err := c.prompt(ctx, fmt.Sprintf("Underlay interface [%s]: ", def))
	if err != nil {
		return err
	}
	if iface == "" {
		iface = def
	}
	if iface == "" {
		return errors.New("no interface given and the agent does not report one")
	}
	c.printf("Releasing %s, running DHCP, guarded: reverted unless the gateway answers...\r\n", iface)
	out, err := c.net.Wrap(ctx, netguard.WrapSpec{Description: "console: reset " + iface + " to DHCP"},
		func(ctx context.Context) error { return dhcpReset(ctx, iface, c.log) })
	if err != nil {
		return err
	}
	c.printf("Confirmed: %s\r\n", out.Reason)
	return nil
}

// validHost accepts a host name or IPv4/IPv6 address: 1–253 characters of
// letters, digits, '.', ':' and '-', starting with a letter or digit. (A loop,
// not a regexp: a bounded repeat of 252 costs every tfsite start ~0.6 ms.)
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i, r := range h {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '.' && r != ':' && r != '-')) {
			return false
		}
	}
	return true
}

func (c *Console) ping(ctx context.Context) error {
	host, err := c.prompt(ctx, "Host or address: ")
	if err != nil {
		return err
	}
	if !validHost(host) {
		return fmt.Errorf("%q is not a host name or address", oneline.Of(host))
	}
	tool, err := c.prompt(ctx, "p) ping  t) traceroute [p]: ")
	if err != nil {
		return err
	}
	argv := []string{"ping", "-n", "-c", "3", "-W", "2", host}
	if tool == "t" {
		argv = []string{"traceroute", "-n", "-w", "1", "-q", "1", "-m", "15", host}
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return fmt.Errorf("%s is not installed on this image", argv[0])
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Run(); err != nil {
		c.printf("%s: %v\r\n", argv[0], err)
	}
	return nil
}

var keyTypes = map[string]bool{"ssh-ed25519": true, "ssh-rsa": true, "ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true,
	"ecdsa-sha2-nistp521": true, "sk-ssh-ed25519@openssh.com": true, "sk-ecdsa-sha2-nistp256@openssh.com": true}

// ParseAuthorizedKey checks one OpenSSH public key line ("TYPE BASE64 [comment]").
func ParseAuthorizedKey(line string) (string, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", errors.New("want one OpenSSH public key line: TYPE BASE64 [comment]")
	}
	if !keyTypes[f[0]] {
		return "", fmt.Errorf("key type %q: want ssh-ed25519, ssh-rsa or ecdsa-sha2-*", clip(f[0], 40))
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(blob) < 4 {
		return "", errors.New("the key's base64 part does not decode")
	}
	n := binary.BigEndian.Uint32(blob)
	if int(n) > len(blob)-4 || string(blob[4:4+n]) != f[0] {
		return "", errors.New("the key's data does not match its type")
	}
	return strings.Join(f, " "), nil
}

func (c *Console) addKey(ctx context.Context) error {
	line, err := c.prompt(ctx, "Paste one public key line: ")
	if err != nil {
		return err
	}
	key, err := ParseAuthorizedKey(line)
	if err != nil {
		return fmt.Errorf("not added: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.cfg.AuthorizedKeys), 0o700); err != nil {
		return err
	}
	old, err := os.ReadFile(c.cfg.AuthorizedKeys)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, l := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(l) == key {
			c.printf("That key is already authorized.\r\n")
			return nil
		}
	}
	if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
		old = append(old, '\n')
	}
	if err := atomicfile.Write(c.cfg.AuthorizedKeys, append(old, []byte(key+"\n")...), 0o600); err != nil {
		return err
	}
	c.printf("Added to %s.\r\n", c.cfg.AuthorizedKeys)
	return nil
}

// bundle writes a tar.gz with what support needs: network state, journal,
// agent status, kernel views of addresses, routes and rules.
func (c *Console) bundle(ctx context.Context) error {
	files := map[string][]byte{"version.txt": []byte(version.String() + "\n")}
	if c.net != nil {
		if st, err := c.net.Show(200); err == nil {
			files["net-show.json"], _ = json.MarshalIndent(st, "", "  ")
		} else {
			files["net-show.err"] = []byte(err.Error())
		}
	}
	if c.agent != nil {
		if st, err := c.agent.Status(ctx); err == nil {
			files["status.json"], _ = json.MarshalIndent(st, "", "  ")
		} else {
			files["status.err"] = []byte(err.Error())
		}
	}
	for _, name := range []string{"journal.json", "pending.json"} {
		if b, err := os.ReadFile(filepath.Join(c.cfg.NetStateDir, name)); err == nil {
			files["netguard/"+name] = b
		}
	}
	for name, argv := range map[string][]string{"ip-addr.txt": {"ip", "addr"}, "ip-route.txt": {"ip", "route", "show", "table", "all"}, "ip-rule.txt": {"ip", "rule"}} {
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err == nil {
			files[name] = out
		}
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	now := time.Now().UTC()
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: now}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(c.cfg.BundleDir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(c.cfg.BundleDir, "tfsite-support-"+now.Format("20060102T150405Z")+".tar.gz")
	if err := atomicfile.Write(path, buf.Bytes(), 0o600); err != nil {
		return err
	}
	c.printf("Wrote a support bundle (%d files):\r\n%s\r\n", len(files), path)
	return nil
}

func (c *Console) shell(ctx context.Context) error {
	_ = c.tty.SetReadDeadline(time.Time{})
	c.printf("Starting %s; type exit to return to the menu.\r\n", c.cfg.Shell)
	cmd := exec.CommandContext(ctx, c.cfg.Shell)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.tty, c.out, c.out
	cmd.Env = append(os.Environ(), "PS1=recovery# ")
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		c.printf("shell: %v\r\n", err)
	}
	return nil
}

func (c *Console) reboot(ctx context.Context) error {
	ans, err := c.prompt(ctx, "Reboot now? Type yes: ")
	if err != nil {
		return err
	}
	if ans != "yes" {
		c.printf("Not rebooting.\r\n")
		return nil
	}
	c.printf("Rebooting...\r\n")
	out, err := exec.CommandContext(ctx, c.cfg.RebootCommand[0], c.cfg.RebootCommand[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("reboot: %v: %s", err, oneline.Of(string(out)))
	}
	return nil
}

// update installs the next tfsite version beside this one (tfsite update:
// verified, into the free root slot, three boot tries) and offers to
// reboot into it.
func (c *Console) update(ctx context.Context) error {
	c.printf("Install a newer tfsite from a directory (mount the USB stick or disk from the\r\n" +
		"shell, entry 10) or an http(s) URL holding tfsite_<version>.root.raw.gz,\r\n" +
		"tfsite_<version>.efi, SHA256SUMS and SHA256SUMS.gpg.\r\n")
	from, err := c.prompt(ctx, "Directory or URL (empty: cancel): ")
	if err != nil || from == "" {
		return err
	}
	argv := append(append([]string(nil), c.cfg.UpdateCommand...), "--from", from)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = crlf{c.out}, crlf{c.out}
	if err := cmd.Run(); err != nil {
		c.printf("Not updated (%v); this version keeps running.\r\n", err)
		return nil
	}
	return c.reboot(ctx)
}

// crlf writes a command's output to the raw terminal, ending lines with CRLF.
type crlf struct{ w io.Writer }

func (c crlf) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}
