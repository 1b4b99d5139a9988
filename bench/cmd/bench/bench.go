package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/bench/internal/run"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// bench runs the benchmark and writes the report.
func bench(ctx context.Context, args []string, log zerolog.Logger) error {
	var c config
	s := settings.New("bench run", "Drive the whole pipeline at a series of offered rates (open loop) and write "+
		"bench/out/latest.{json,md,svg}: throughput, end-to-end latency, CPU per event, backlog and lag, against "+
		"the PostgreSQL-only limit and watermill's forwarder. Needs PostgreSQL (make postgres) and make build.")
	c.bind(s)
	if err := s.Parse(args); err != nil {
		return err
	}
	rc, err := c.runConfig()
	if err != nil {
		return err
	}
	log.Info().Str("preset", rc.Profile).Str("mode", rc.Mode).Floats64("rates", rc.Rates).
		Floats64("peer_rates", rc.PeerRates).Dur("step", rc.StepDuration).Int("writers", rc.Writers).
		Int("bulk_histories", rc.BulkHistories).Str("kafka", brokerOf(rc)).Msg("benchmark starting")
	res, err := run.New(rc, log).Run(ctx)
	if res != nil {
		if werr := res.WriteFiles(rc.OutDir); werr != nil {
			return werr
		}
		fmt.Fprintf(os.Stdout, "wrote %s, %s, %s\n", filepath.Join(rc.OutDir, "latest.json"),
			filepath.Join(rc.OutDir, "latest.md"), filepath.Join(rc.OutDir, "latest.svg"))
		for _, e := range res.Errors {
			log.Warn().Str("error", e).Msg("part of the run failed")
		}
	}
	return err
}

func brokerOf(rc run.Config) string {
	if len(rc.Kafka.Brokers) == 0 {
		return "embedded bin/devkafka"
	}
	return rc.Kafka.String()
}
