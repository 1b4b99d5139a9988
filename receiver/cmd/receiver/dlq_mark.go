package main

import (
	"context"
	"fmt"

	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

const dlqMarkSummary = `receiver dlq mark-handled ID... [--note TEXT] [--unmark]

Marks entries as handled (dealt with by other means): "receiver dlq list"
hides them unless --all, and "receiver dlq replay" never replays them. The
note says why, for whoever looks next. --unmark does what "receiver dlq
unmark" does. Every ID must name an entry of the topic.`

const dlqUnmarkSummary = `receiver dlq unmark ID...

Forgets what was recorded about entries (handled or replayed): they are new
again, listed by default and replayed without --again.`

// dlqMarkHandled runs `receiver dlq mark-handled`.
func (a *app) dlqMarkHandled(ctx context.Context, args []string) error {
	var note string
	var unmark bool
	cfg, ids, err := a.dlqConfigure("mark-handled", dlqMarkSummary, args, func(s *settings.Set) {
		s.String(&note, "note", "", "", "why the entries need no replay, e.g. a ticket")
		s.Bool(&unmark, "unmark", "", false, "remove the marks instead (as dlq unmark)")
	})
	if err != nil {
		return err
	}
	if err := checkIDs("mark-handled", ids); err != nil {
		return err
	}
	if unmark {
		return a.unmark(ctx, cfg, ids)
	}
	s, err := a.openDLQ(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	items, err := s.queue.MarkHandled(ctx, ids, note)
	if err != nil {
		return err
	}
	for _, it := range items {
		fmt.Fprintf(a.stdout, "%s handled\n", it.ID)
	}
	return nil
}

// dlqUnmark runs `receiver dlq unmark`.
func (a *app) dlqUnmark(ctx context.Context, args []string) error {
	cfg, ids, err := a.dlqConfigure("unmark", dlqUnmarkSummary, args, func(*settings.Set) {})
	if err != nil {
		return err
	}
	if err := checkIDs("unmark", ids); err != nil {
		return err
	}
	return a.unmark(ctx, cfg, ids)
}

func (a *app) unmark(ctx context.Context, cfg *dlqConfig, ids []string) error {
	s, err := a.openDLQ(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	cleared, err := s.queue.Unmark(ctx, ids)
	if err != nil {
		return err
	}
	had := map[string]bool{}
	for _, id := range cleared {
		had[id] = true
	}
	for _, id := range ids {
		if p, o, err := dlq.ParseID(id); err == nil {
			id = dlq.FormatID(p, o) // as the store names it: "0:07" is 0:7
		}
		if had[id] {
			fmt.Fprintf(a.stdout, "%s unmarked: new again\n", id)
		} else {
			fmt.Fprintf(a.stdout, "%s had no mark\n", id)
		}
	}
	return nil
}
