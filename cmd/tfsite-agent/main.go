// Command tfsite-agent is the node agent alone (`tfsite agent` without the
// rest of the CLI): gossip, allocation, underlay discovery, the API socket
// and metrics. It links neither bring-up's Kubernetes client nor cobra, so
// the process the appliance keeps running stays small (docs/benchmarks.md,
// bench-alloc); bring-up runs as `tfsite bringup` next to it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/tfsite/tfsite/cmd/internal/cli"
	"github.com/tfsite/tfsite/internal/version"
)

func main() {
	cli.Exit("tfsite-agent", run(os.Args[1:]))
}

func usage(w io.Writer, fl *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\n%s\n\nUsage:\n  tfsite-agent [flags]\n\nFlags:\n%s", cli.AgentShort, cli.AgentLong("tfsite-agent"), fl.FlagUsages())
}

func run(args []string) error {
	fl := pflag.NewFlagSet("tfsite-agent", pflag.ContinueOnError)
	var f cli.AgentFlags
	f.Register(fl)
	showVersion := fl.Bool("version", false, "print the version and exit")
	fl.Usage = func() { usage(os.Stdout, fl) }
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return cli.WithCode(cli.ExitBadConfig, fmt.Errorf("%w (see tfsite-agent --help)", err))
	}
	if fl.NArg() > 0 {
		return cli.WithCode(cli.ExitBadConfig, fmt.Errorf("unexpected arguments %q: tfsite-agent takes flags only (see --help)", strings.Join(fl.Args(), " ")))
	}
	if *showVersion {
		fmt.Println(version.String())
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return f.Run(ctx)
}
