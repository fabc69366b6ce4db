package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
)

// Retention at scale: W9's last phase, a retention pass deleting the
// history while W5 runs, and W10, the database's size under a steady load
// and a short retention.

// retentionPhase is W9's last phase: it runs after W7, since it deletes
// the history the others measure with.
func retentionPhase(ctx context.Context, c *config, s tasks.Store, db *sql.DB, d tasks.Dialect) ([]figure, error) {
	before, err := bench.MeasureSize(ctx, db, d)
	if err != nil {
		return nil, fmt.Errorf("size before retention: %w", err)
	}
	r, err := bench.RetentionPass(ctx, s, db, d, latenessRate(c), c.latenessFrom, c.vacuum)
	if err != nil {
		return nil, err
	}
	if r.Vacuums.N > 0 {
		fmt.Fprintf(c.out, "W9 retention pass: %d VACUUMs, p50 %v, max %v\n", r.Vacuums.N,
			r.Vacuums.P50.Round(time.Millisecond), r.Vacuums.Max.Round(time.Millisecond))
	}
	if r.StallN > 0 {
		fmt.Fprintf(c.out, "W9 retention pass: %d W5 tasks started a second or more late; the first, due from the pass's start:", r.StallN)
		for _, st := range r.Stalls {
			fmt.Fprintf(c.out, " +%v late %v;", st.Due.Round(time.Millisecond), st.Late.Round(time.Millisecond))
		}
		fmt.Fprintln(c.out)
	}
	after, err := bench.MeasureSize(ctx, db, d)
	if err != nil {
		return nil, fmt.Errorf("size after retention: %w", err)
	}
	return []figure{
		{name: "retention deleted", unit: "tasks", value: float64(r.Deleted.N)},
		{name: "retention time", unit: "s", value: r.Deleted.Elapsed.Seconds()},
		{name: "retention rate", unit: "tasks/s", value: r.Deleted.PerSecond()},
		{name: "retention batch p50", unit: "ms", value: ms(r.Batch.P50)},
		{name: "retention batch p99", unit: "ms", value: ms(r.Batch.P99)},
		{name: "retention W5 p50", unit: "ms", value: ms(r.Late.P50)},
		{name: "retention W5 p99", unit: "ms", value: ms(r.Late.P99)},
		{name: "retention W5 max", unit: "ms", value: ms(r.Late.Max)},
		{name: "retention W5 tasks", unit: "tasks", value: float64(r.Late.N)},
		{name: "retention W5 early", unit: "tasks", value: float64(r.Early)},
		{name: "retention W5 over 1 s", unit: "tasks", value: float64(r.StallN)},
		{name: "retention size before", unit: "MB", value: mb(before.Bytes)},
		{name: "retention size after", unit: "MB", value: mb(after.Bytes)},
		{name: "retention rows after", unit: "tasks", value: float64(after.Rows)},
	}, nil
}

// latenessRate is the rate, in tasks a second, at which W5 schedules its
// tasks: -lateness over the span from -lateness-from to -lateness-to, or
// over a second if the span is empty.
func latenessRate(c *config) int {
	span := max(c.latenessTo-c.latenessFrom, time.Second)
	return max(int(float64(c.lateness)/span.Seconds()), 1)
}

// mb returns b in megabytes (10⁶ bytes).
func mb(b int64) float64 { return float64(b) / 1e6 }

// runRetentionSteady is W10: W4 for -duration with completed tasks kept
// -retain, sampling the database's size every -sample; it prints the
// samples as a table and reports the growth of the size from the sample
// at 3/10 of the run (minute 3 of 10) to the last.
func runRetentionSteady(ctx context.Context, c *config, t *target) ([]figure, error) {
	r, err := withStore(ctx, t, func(s tasks.Store) (bench.RetentionSteadyResult, error) {
		ds, ok := s.(interface{ DB() *sql.DB })
		if !ok {
			return bench.RetentionSteadyResult{}, errors.New("the store has no database")
		}
		d := tasks.SQLite
		if t.name == "postgres" {
			d = tasks.Postgres
		}
		fmt.Fprintf(c.out, "W10 on %s: %v of W4, completed tasks kept %v, size every %v", t.name, c.duration, c.retain, c.sample)
		if d == tasks.Postgres && c.vacuum > 0 {
			fmt.Fprintf(c.out, ", VACUUM every %v", c.vacuum)
		}
		fmt.Fprintln(c.out)
		tw := tabwriter.NewWriter(c.out, 12, 0, 2, ' ', tabwriter.AlignRight) // flushed at each row: fixed widths
		fmt.Fprintln(tw, "time\tran\trows\tsize MB\tfree MB\tdead rows\t")
		tw.Flush()
		return bench.RetentionSteady(ctx, s, ds.DB(), d, c.duration, c.sample, c.retain, c.vacuum, func(s bench.SteadySample) {
			printSample(tw, s)
			tw.Flush()
		})
	})
	if err != nil {
		return nil, err
	}
	mid := r.Samples[0]
	for _, s := range r.Samples {
		if s.At <= c.duration*3/10+c.sample/2 {
			mid = s
		}
	}
	last := r.Samples[len(r.Samples)-1]
	growth := 0.0
	if mid.Bytes > 0 {
		growth = 100 * float64(last.Bytes-mid.Bytes) / float64(mid.Bytes)
	}
	if r.Vacuums.N > 0 {
		fmt.Fprintf(c.out, "W10 on %s: %d VACUUMs, p50 %v, max %v\n", t.name, r.Vacuums.N,
			r.Vacuums.P50.Round(time.Millisecond), r.Vacuums.Max.Round(time.Millisecond))
	}
	return []figure{
		{name: "completed", unit: "tasks/s", value: r.Completed.PerSecond()},
		{name: "rows at end", unit: "tasks", value: float64(last.Rows)},
		{name: "size at 3/10", unit: "MB", value: mb(mid.Bytes)},
		{name: "size at end", unit: "MB", value: mb(last.Bytes)},
		{name: "growth from 3/10", unit: "%", value: growth},
	}, nil
}

// printSample writes a W10 sample as a row of the table that
// runRetentionSteady prints.
func printSample(w io.Writer, s bench.SteadySample) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t\n", s.At.Round(time.Second), format(float64(s.Ran)), format(float64(s.Rows)),
		format(mb(s.Bytes)), format(mb(s.Free)), format(float64(s.Dead)))
}
