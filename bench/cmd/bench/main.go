// Command bench drives the whole invoicesync pipeline on this machine at a
// series of offered rates and reports throughput, end-to-end latency, CPU
// per event, backlog and lag against two baselines: the PostgreSQL-only
// limit and watermill's SQL-to-Kafka forwarder.
//
//	bench run [flags]     run the benchmark (make bench, make bench-quick)
//	bench forwarder       the watermill forwarder process of the peer series
//
// Run "bench run --help" for the settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/invoicesync/invoicesync/pkg/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := dispatch(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	cmd, rest := "run", args
	if len(args) > 0 && (args[0] == "run" || args[0] == "forwarder") {
		cmd, rest = args[0], args[1:]
	}
	log, _ := logging.New(os.Stderr, logging.FormatAuto, "info", "bench") // constants: cannot fail
	if cmd == "forwarder" {
		return forwarder(ctx, rest)
	}
	return bench(ctx, rest, log)
}
