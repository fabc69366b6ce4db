package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
)

// W9 measures what a long history costs: the same workloads and reads on
// an empty store and on one that holds -history finished tasks, in one
// run, with ratios where the issue sets them (W3 and W7 ≥ 0.9 of empty).

// historyStores are the stores W9 runs on: the durable ones, whose
// history is a table.
var historyStores = []string{"sqlite", "postgres"}

// historyPhase is a step of W9 on the filled store: it runs on the store
// and its database and adds its figures. The phases run in order on one
// store: reads first, while the store holds only history, then the
// workloads, and last the retention pass, which deletes the history (and
// runs the tasks W7 leaves pending).
type historyPhase func(ctx context.Context, c *config, s tasks.Store, db *sql.DB, d tasks.Dialect) ([]figure, error)

// emptyFigures are the figures of W9's workloads on empty stores, each on
// a fresh one, as W3, W5 and W7 run alone.
type emptyFigures struct {
	drain, create bench.Rate
	lateness      bench.LatenessResult
	reads         bench.ReadsResult
}

func runHistory(ctx context.Context, c *config, t *target) ([]figure, error) {
	var e emptyFigures
	var err error
	if e.reads, err = withStore(ctx, t, func(s tasks.Store) (bench.ReadsResult, error) {
		return bench.Reads(ctx, s, c.reads)
	}); err != nil {
		return nil, fmt.Errorf("empty: %w", err)
	}
	if e.lateness, err = withStore(ctx, t, func(s tasks.Store) (bench.LatenessResult, error) {
		return bench.Lateness(ctx, s, s, c.lateness, c.latenessFrom, c.latenessTo)
	}); err != nil {
		return nil, fmt.Errorf("empty: %w", err)
	}
	if e.drain, err = withStore(ctx, t, func(s tasks.Store) (bench.Rate, error) {
		return bench.Drain(ctx, c.drain, s)
	}); err != nil {
		return nil, fmt.Errorf("empty: %w", err)
	}
	if e.create, err = withStore(ctx, t, func(s tasks.Store) (bench.Rate, error) {
		return bench.HTTPCreate(ctx, s, c.http.d, c.http.n)
	}); err != nil {
		return nil, fmt.Errorf("empty: %w", err)
	}

	phases := []historyPhase{
		fillPhase,
		func(ctx context.Context, c *config, s tasks.Store, _ *sql.DB, _ tasks.Dialect) ([]figure, error) {
			r, err := bench.Reads(ctx, s, c.reads)
			if err != nil {
				return nil, err
			}
			return readFigures(e.reads, r), nil
		},
		func(ctx context.Context, c *config, s tasks.Store, _ *sql.DB, _ tasks.Dialect) ([]figure, error) {
			r, err := bench.Lateness(ctx, s, s, c.lateness, c.latenessFrom, c.latenessTo)
			if err != nil {
				return nil, err
			}
			return []figure{
				{name: "W5 p50 empty", unit: "ms", value: ms(e.lateness.Late.P50)},
				{name: "W5 p50", unit: "ms", value: ms(r.Late.P50)},
				{name: "W5 p99 empty", unit: "ms", value: ms(e.lateness.Late.P99)},
				{name: "W5 p99", unit: "ms", value: ms(r.Late.P99)},
				{name: "W5 early", unit: "tasks", value: float64(r.Early + e.lateness.Early)},
			}, nil
		},
		func(ctx context.Context, c *config, s tasks.Store, _ *sql.DB, _ tasks.Dialect) ([]figure, error) {
			r, err := bench.Drain(ctx, c.drain, s)
			if err != nil {
				return nil, err
			}
			return ratioFigures("W3 drain", "tasks/s", e.drain, r), nil
		},
		func(ctx context.Context, c *config, s tasks.Store, _ *sql.DB, _ tasks.Dialect) ([]figure, error) {
			r, err := bench.HTTPCreate(ctx, s, c.http.d, c.http.n)
			if err != nil {
				return nil, err
			}
			return ratioFigures("W7 create", "requests/s", e.create, r), nil
		},
		retentionPhase,
	}
	return withStore(ctx, t, func(s tasks.Store) ([]figure, error) {
		ds, ok := s.(interface{ DB() *sql.DB })
		if !ok {
			return nil, errors.New("the store has no database")
		}
		d := tasks.SQLite
		if t.name == "postgres" {
			d = tasks.Postgres
		}
		var figs []figure
		for _, p := range phases {
			f, err := p(ctx, c, s, ds.DB(), d)
			if err != nil {
				return nil, fmt.Errorf("history: %w", err)
			}
			figs = append(figs, f...)
		}
		return figs, nil
	})
}

// fillPhase fills the store with c.history finished tasks.
func fillPhase(ctx context.Context, c *config, _ tasks.Store, db *sql.DB, d tasks.Dialect) ([]figure, error) {
	r, err := bench.FillHistory(ctx, db, d, c.history)
	if err != nil {
		return nil, err
	}
	return []figure{
		{name: "fill", unit: "tasks/s", value: r.Tasks.PerSecond()},
		{name: "fill settle", unit: "ms", value: ms(r.Settle)},
	}, nil
}

// ratioFigures are a rate on the empty store and with history, and their
// ratio.
func ratioFigures(name, unit string, empty, history bench.Rate) []figure {
	ratio := 0.0
	if e := empty.PerSecond(); e > 0 {
		ratio = history.PerSecond() / e
	}
	return []figure{
		{name: name + " empty", unit: unit, value: empty.PerSecond()},
		{name: name, unit: unit, value: history.PerSecond()},
		{name: name + " ratio", unit: "× empty", value: ratio},
	}
}

// readFigures are the p50 of each read on the empty store, and its p50
// and p99 with history; and the task page's first view with history.
func readFigures(empty, history bench.ReadsResult) []figure {
	var figs []figure
	for _, r := range []struct {
		name           string
		empty, history bench.Latency
	}{
		{"counts", empty.Counts, history.Counts},
		{"list", empty.List, history.List},
		{"list failed", empty.ListFailed, history.ListFailed},
		{"dashboard home", empty.Home, history.Home},
		{"dashboard tasks", empty.Tasks, history.Tasks},
	} {
		figs = append(figs,
			figure{name: r.name + " p50 empty", unit: "ms", value: ms(r.empty.P50)},
			figure{name: r.name + " p50", unit: "ms", value: ms(r.history.P50)},
			figure{name: r.name + " p99", unit: "ms", value: ms(r.history.P99)},
		)
	}
	// The task page's first view, which counts the chart's whole hour.
	return append(figs, figure{name: "dashboard tasks cold", unit: "ms", value: ms(history.TasksCold)})
}
