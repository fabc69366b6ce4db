// Command tasksbench measures package tasks on a MemoryStore, SQLite (a
// temporary file) and PostgreSQL, next to raw-SQL floors run in the same
// process: the bare statements any durable queue needs, on a plain table
// with the one index a claim needs and no trigger, and again on the
// library's own tables (the figures labelled "vs own table"). Package internal/bench describes each workload, W1 to W7
// and M1, M2, and what it measures; W9 runs W3, W5 and W7 and the reads
// of the dashboard on an empty store and on one filled with -history
// finished tasks, and prints both and their ratios, then times a retention
// pass deleting that history while W5 runs; W10 runs W4 for -duration with
// completed tasks kept -retain and prints the database's size every
// -sample. W8 (scaleout.go) runs 1 to -scaleout-procs engine processes,
// copies of tasksbench, on one PostgreSQL schema; W12 (tasksd.go) runs a
// built tasksd on SQLite under HTTP creates from this process; W13
// (overload.go) is W4 with producers that do not hold back, without and
// with Config.MaxWaiting.
//
//	go run ./cmd/tasksbench -postgres "$URL"            # everything, three times
//	go run ./cmd/tasksbench                              # PostgreSQL skipped
//	go run ./cmd/tasksbench -count 1 -workloads W3 -stores sqlite -cpuprofile cpu.out
//	go run ./cmd/tasksbench -count 1 -workloads W9 -history 10000000 -postgres "$URL"
//	go run ./cmd/tasksbench -count 1 -workloads W10 -duration 10m -postgres "$URL"
//
// Every workload runs -count times on each store. tasksbench prints each
// run as it ends, then a table of the medians, each with its floor's median
// and their ratio (engine ÷ floor), and writes every run's figures to the
// -json file. Run tasksbench -h for the flags.
//
// On PostgreSQL it creates a schema of its own, which the URL's
// search_path then names, and drops it at the end, also after an error or
// an interrupt. A URL that names a search_path makes it work in that
// schema instead: the schema must hold no tasks, since tasksbench empties
// its tables before each run, and is left with its tables empty.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/taskwheel/tasks/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == scaleoutCommand { // an engine process of W8
		err = runScaleoutEngine(ctx, os.Args[2:], os.Stdin, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasksbench:", err)
		os.Exit(1)
	}
}

// durationOrCount is a flag that bounds a run by a duration ("5s") or a
// count ("20000").
type durationOrCount struct {
	d time.Duration
	n int
}

func (v *durationOrCount) String() string {
	if v.n > 0 {
		return strconv.Itoa(v.n)
	}
	return v.d.String()
}

func (v *durationOrCount) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return errors.New("want a positive count")
		}
		*v = durationOrCount{n: n}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration (5s) or count (20000)")
	}
	*v = durationOrCount{d: d}
	return nil
}

// listFlag is a comma-separated list.
type listFlag []string

func (v *listFlag) String() string { return strings.Join(*v, ",") }

func (v *listFlag) Set(s string) error {
	*v = nil
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			*v = append(*v, e)
		}
	}
	return nil
}

// config is tasksbench's flags.
type config struct {
	postgres                 string
	count                    int
	enqueue, batch, drain    int
	steady                   time.Duration
	lateness                 int
	latenessFrom, latenessTo time.Duration
	webhooks                 int
	http                     durationOrCount
	memTasks                 int
	flowRate                 time.Duration // W11
	flowWaiting, fairBacklog int           // W11
	flowDrains               int           // W11
	history, reads           int
	duration, sample, retain time.Duration
	vacuum                   time.Duration
	scaleout                 time.Duration // W8
	scaleoutNoop             int           // W8
	scaleoutProcs            int           // W8
	scaleoutConns            int           // W8
	maxWaiting               int           // W13
	tasksdBin                string        // W12
	tasksdDuration           time.Duration // W12
	stores, workloads        listFlag
	flowParts                listFlag // W11
	jsonPath                 string
	cpuProfile, memProfile   string
	otel                     bool
	otelSample               float64

	flags map[string]string // every flag's value, for the report
	out   io.Writer         // where workloads print what is not a figure
}

var storeNames = []string{"memory", "sqlite", "postgres"}

// optionalStores are stores run only when -stores names them:
// "sqlite-full" is SQLite with synchronous=FULL (sqlite.Config.Synchronous),
// to measure what durability against power loss costs beside "sqlite".
var optionalStores = []string{"sqlite-full"}

const usageHeader = `tasksbench measures package tasks on a MemoryStore, SQLite and PostgreSQL
against raw-SQL floors, and prints the medians of -count runs as a table.

Usage: tasksbench [flags]

`

// parseConfig reads the flags. It does no I/O; usage is where -h writes.
func parseConfig(args []string, usage io.Writer) (*config, error) {
	fs := flag.NewFlagSet("tasksbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &config{
		http:      durationOrCount{d: 5 * time.Second},
		stores:    storeNames,
		workloads: listFlag{"W1", "W2", "W3", "W4", "W5", "W6", "W7", "M1", "M2"},
		flowParts: flowParts,
	}
	fs.StringVar(&c.postgres, "postgres", "", "PostgreSQL URL or keyword/value DSN; without it PostgreSQL is skipped.\n"+
		"With a search_path in it, tasksbench works in that schema, which must hold no tasks;\n"+
		"otherwise it creates a schema of its own and drops it at the end")
	fs.IntVar(&c.count, "count", 3, "runs of every workload on every store; the table shows medians")
	fs.IntVar(&c.enqueue, "enqueue", 20000, "W1: tasks enqueued, one per call; also the insert floor's tasks for W1 and W7")
	fs.IntVar(&c.batch, "batch", 50000, "W2: tasks enqueued in batches of 1,000")
	fs.IntVar(&c.drain, "drain", 50000, "W3: tasks drained")
	fs.DurationVar(&c.steady, "steady", 10*time.Second, "W4: how long producers and workers run together")
	fs.IntVar(&c.lateness, "lateness", 5000, "W5: tasks scheduled ahead")
	fs.DurationVar(&c.latenessFrom, "lateness-from", 2*time.Second, "W5: how far ahead the first task is scheduled")
	fs.DurationVar(&c.latenessTo, "lateness-to", 4*time.Second, "W5: how far ahead the last task is scheduled")
	fs.IntVar(&c.webhooks, "webhooks", 5000, "W6: tasks delivered to a local webhook receiver")
	fs.Var(&c.http, "http", "W7: how long (5s) or how many requests (20000) to create tasks over HTTP")
	fs.DurationVar(&c.flowRate, "flowrate", 10*time.Second, "W11: how long the rate limit runs")
	fs.IntVar(&c.flowWaiting, "flowwaiting", 100_000, "W11: tasks waiting on a 1/s key during a drain")
	fs.IntVar(&c.fairBacklog, "fairbacklog", 200_000, "W11: app A's backlog of due tasks")
	fs.IntVar(&c.flowDrains, "flowdrains", 3, "W11: drains of each kind in the overhead and isolation parts (the median counts)")
	fs.Var(&c.flowParts, "flowparts", "W11: the parts to run (rate,endpoint,concurrency,overhead,isolation,fairness)")
	fs.DurationVar(&c.scaleout, "scaleout", 5*time.Second, "W8: how long the 20 ms tasks run at N × 800/s (sets their count)")
	fs.IntVar(&c.scaleoutNoop, "scaleout-noop", 20000, "W8: no-op tasks due at once")
	fs.IntVar(&c.scaleoutProcs, "scaleout-procs", 4, "W8: engine processes, from 1 up to this many")
	fs.IntVar(&c.scaleoutConns, "scaleout-conns", 0, "W8: each engine process's postgres.Config.MaxConns; 0, its default")
	fs.StringVar(&c.tasksdBin, "tasksd", "", "W12: the tasksd binary; \"\", built with go build from this module")
	fs.DurationVar(&c.tasksdDuration, "tasksd-duration", 30*time.Second, "W12: how long each of its three loads runs")
	fs.IntVar(&c.maxWaiting, "maxwaiting", 1000, "W13: the Config.MaxWaiting of its bounded run")
	fs.IntVar(&c.memTasks, "memtasks", 1_000_000, "M1, M2: tasks held")
	fs.IntVar(&c.history, "history", 10_000_000, "W9: finished tasks in the store's history (at least 2)")
	fs.IntVar(&c.reads, "reads", 50, "W9: timed calls of each read (counts, list pages, dashboard pages)")
	fs.DurationVar(&c.duration, "duration", 10*time.Minute, "W10: how long W4 runs under a short retention")
	fs.DurationVar(&c.sample, "sample", 30*time.Second, "W10: how often the database's size is sampled")
	fs.DurationVar(&c.retain, "retain", time.Minute, "W10: how long completed tasks are kept (Config.RetainCompleted)")
	fs.DurationVar(&c.vacuum, "vacuum", 0, "W9's retention pass and W10 on PostgreSQL: run VACUUM on the tables this often,\nwith autovacuum's cost delay, "+
		"for a server whose autovacuum is off; 0, never")
	fs.Var(&c.stores, "stores", "stores to run on (memory,sqlite,postgres, and sqlite-full: SQLite with synchronous=FULL,\n"+
		"run only when named); M1 runs on memory only, M2 on sqlite only")
	fs.Var(&c.workloads, "workloads", "workloads to run (W1,W2,W3,W4,W5,W6,W7,M1,M2,W8,W9,W10,W11,W12,W13); W8, scale-out\n"+
		"(PostgreSQL), W9, the long history, W10, the size under retention, W11, flow control,\n"+
		"W12, tasksd end to end (sqlite), and W13, backpressure (memory), run only when named: -workloads W9,W10 -count 1")
	fs.BoolVar(&c.otel, "otel", false, "W3, W5: run each also with the engine's OpenTelemetry traces and metrics on\n"+
		"(the SDK, exporting nowhere), and show those figures (\"+otel\") against the others")
	fs.Float64Var(&c.otelSample, "otel-sample", 1, "with -otel: the share of traces sampled, from 0 to 1:\n"+
		"ParentBased(TraceIDRatioBased(share)), an enqueue's decision its attempts'")
	fs.StringVar(&c.jsonPath, "json", "tasksbench.json", "file to write every run's figures to, as JSON")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "file to write a CPU profile of the runs to")
	fs.StringVar(&c.memProfile, "memprofile", "", "file to write a heap profile to at the end")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		io.WriteString(usage, usageHeader)
		fs.SetOutput(usage)
		fs.PrintDefaults()
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("%w (run tasksbench -h for the flags)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only; run tasksbench -h)", fs.Arg(0))
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"count", c.count}, {"enqueue", c.enqueue}, {"batch", c.batch}, {"drain", c.drain},
		{"lateness", c.lateness}, {"webhooks", c.webhooks}, {"memtasks", c.memTasks}, {"reads", c.reads},
		{"scaleout-noop", c.scaleoutNoop}, {"scaleout-procs", c.scaleoutProcs}, {"maxwaiting", c.maxWaiting}, {"flowdrains", c.flowDrains}} {
		if n.v <= 0 {
			return nil, fmt.Errorf("-%s = %d: want a positive number", n.flag, n.v)
		}
	}
	switch {
	case c.tasksdDuration <= 0:
		return nil, fmt.Errorf("-tasksd-duration = %v: want a positive duration", c.tasksdDuration)
	case c.scaleout <= 0:
		return nil, fmt.Errorf("-scaleout = %v: want a positive duration", c.scaleout)
	case c.steady <= 0:
		return nil, fmt.Errorf("-steady = %v: want a positive duration", c.steady)
	case c.duration <= 0 || c.sample <= 0 || c.retain <= 0 || c.vacuum < 0:
		return nil, fmt.Errorf("-duration %v, -sample %v, -retain %v, -vacuum %v: want positive durations (-vacuum may be 0)",
			c.duration, c.sample, c.retain, c.vacuum)
	case c.latenessFrom < 0 || c.latenessTo < c.latenessFrom:
		return nil, fmt.Errorf("-lateness-from %v, -lateness-to %v: want 0 <= from <= to", c.latenessFrom, c.latenessTo)
	case c.history < 2:
		return nil, fmt.Errorf("-history = %d: want at least 2 tasks", c.history)
	case !(c.otelSample >= 0 && c.otelSample <= 1):
		return nil, fmt.Errorf("-otel-sample = %v: want a share from 0 to 1", c.otelSample)
	case c.jsonPath == "":
		return nil, errors.New("-json must name a file")
	}
	for _, s := range c.stores {
		if !slices.Contains(storeNames, s) && !slices.Contains(optionalStores, s) {
			return nil, fmt.Errorf("-stores: unknown store %q; want some of %s", s, strings.Join(append(storeNames, optionalStores...), ","))
		}
	}
	for _, p := range c.flowParts {
		if !slices.Contains(flowParts, p) {
			return nil, fmt.Errorf("-flowparts: unknown part %q; want some of %s", p, strings.Join(flowParts, ","))
		}
	}
	for _, w := range c.workloads {
		if !slices.ContainsFunc(workloads, func(wl workload) bool { return wl.id == w }) {
			return nil, fmt.Errorf("-workloads: unknown workload %q; want some of W1,W2,W3,W4,W5,W6,W7,M1,M2,W8,W9,W10,W11,W12,W13", w)
		}
	}
	c.flags = make(map[string]string)
	fs.VisitAll(func(f *flag.Flag) { c.flags[f.Name] = f.Value.String() })
	c.flags["postgres"] = redact(c.postgres)
	return c, nil
}

// row is a figure of a workload on a store, over every run.
type row struct {
	Workload    string    `json:"workload"` // its ID, such as "W3"
	Figure      string    `json:"figure"`   // as labelled in the table, such as "W3 drain"
	Store       string    `json:"store"`
	Unit        string    `json:"unit"`
	Runs        []float64 `json:"runs"`
	Median      float64   `json:"median"`
	FloorRuns   []float64 `json:"floor_runs,omitempty"`
	FloorMedian float64   `json:"floor_median,omitempty"`
	Ratio       float64   `json:"ratio,omitempty"` // Median ÷ FloorMedian
}

// report is what -json writes.
type report struct {
	GoVersion string            `json:"go_version"`
	GOOS      string            `json:"goos"`
	GOARCH    string            `json:"goarch"`
	NumCPU    int               `json:"num_cpu"`
	Date      string            `json:"date"`
	Flags     map[string]string `json:"flags"`
	Rows      []*row            `json:"rows"`
}

// run is tasksbench: it runs the workloads and writes their progress and
// the table to stdout, and the report to the -json file.
func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	c, err := parseConfig(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	c.out = stdout

	var targets []*target
	for _, name := range c.stores {
		switch name {
		case "memory":
			targets = append(targets, memoryTarget())
		case "sqlite", "sqlite-full":
			dir, err := os.MkdirTemp("", "tasksbench-")
			if err != nil {
				return fmt.Errorf("sqlite: %w", err)
			}
			defer func() {
				if rerr := os.RemoveAll(dir); rerr != nil {
					err = errors.Join(err, fmt.Errorf("sqlite: remove temporary files: %w", rerr))
				}
			}()
			synchronous := "NORMAL"
			if name == "sqlite-full" {
				synchronous = "FULL"
			}
			targets = append(targets, sqliteTarget(name, dir, &sqlite.Config{Synchronous: synchronous}))
		case "postgres":
			if c.postgres == "" {
				fmt.Fprintln(stdout, "postgres: skipped (no -postgres URL)")
				continue
			}
			pg, err := openPostgres(ctx, c.postgres)
			if err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			defer func() {
				if cerr := pg.close(ctx); cerr != nil {
					err = errors.Join(err, fmt.Errorf("postgres: %w", cerr))
				}
			}()
			targets = append(targets, pg.target())
		}
	}

	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	rep := &report{
		GoVersion: runtime.Version(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
		Date:      time.Now().UTC().Format(time.RFC3339),
		Flags:     c.flags,
	}
	for _, t := range targets {
		for _, w := range workloads {
			if !slices.Contains(c.workloads, w.id) || w.stores != nil && !slices.Contains(w.stores, t.name) {
				continue
			}
			if err := runWorkload(ctx, c, w, t, rep, stdout); err != nil {
				return fmt.Errorf("%s %s on %s: %w", w.id, w.name, t.name, err)
			}
		}
	}

	if c.memProfile != "" {
		if err := writeHeapProfile(c.memProfile); err != nil {
			return fmt.Errorf("-memprofile: %w", err)
		}
	}
	fmt.Fprintln(stdout)
	if err := printTable(stdout, rep.Rows); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	return nil
}

// runWorkload runs w on t c.count times and adds its rows to rep.
func runWorkload(ctx context.Context, c *config, w workload, t *target, rep *report, stdout io.Writer) error {
	var rows []*row
	for i := range c.count {
		// Collect the garbage of the last run (a steady run leaves
		// millions of tasks), so that it does not weigh on this one.
		runtime.GC()
		start := time.Now()
		instrumented := c.otel && slices.Contains(otelWorkloads, w.id)
		var on []figure
		var err error
		if instrumented && i%2 == 1 {
			// Every other run instrumented first, so that neither way
			// always has what the other left behind (a grown file, heap).
			if on, err = withOtel(ctx, c.otelSample, func() ([]figure, error) { return w.run(ctx, c, t) }); err != nil {
				return fmt.Errorf("with -otel: %w", err)
			}
			runtime.GC()
		}
		figs, err := w.run(ctx, c, t)
		if err != nil {
			return err
		}
		if instrumented {
			// The same run once more, instrumented: its figures, each
			// with the uninstrumented one as its floor.
			if on == nil {
				runtime.GC()
				if on, err = withOtel(ctx, c.otelSample, func() ([]figure, error) { return w.run(ctx, c, t) }); err != nil {
					return fmt.Errorf("with -otel: %w", err)
				}
			}
			for j := range on {
				on[j].name = strings.TrimSpace(on[j].name + otelSuffix)
				on[j].floor = figs[j].value
			}
			figs = append(figs, on...)
		}
		if rows == nil {
			for _, f := range figs {
				rows = append(rows, &row{Workload: w.id, Figure: label(w, f), Store: t.name, Unit: f.unit})
			}
		}
		var line []string
		for j, f := range figs {
			r := rows[j]
			r.Runs = append(r.Runs, f.value)
			s := strings.TrimSpace(f.name + " " + format(f.value) + " " + f.unit)
			if f.floor > 0 {
				r.FloorRuns = append(r.FloorRuns, f.floor)
				s += " (floor " + format(f.floor) + ")"
			}
			line = append(line, s)
		}
		fmt.Fprintf(stdout, "%s %s on %s, run %d of %d: %s [%.1fs]\n",
			w.id, w.name, t.name, i+1, c.count, strings.Join(line, ", "), time.Since(start).Seconds())
	}
	for _, r := range rows {
		r.Median = median(r.Runs)
		if len(r.FloorRuns) > 0 {
			r.FloorMedian = median(r.FloorRuns)
			r.Ratio = r.Median / r.FloorMedian
		}
	}
	rep.Rows = append(rep.Rows, rows...)
	return nil
}

// label is f's name in the table.
func label(w workload, f figure) string {
	return strings.TrimSpace(w.id + " " + w.name + " " + f.name)
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// format writes v with three significant digits at least, and thousands
// separated.
func format(v float64) string {
	// The cases compare v with where rounding moves to the next case, so
	// that 9.996 prints "10.0", as 10 does, not "10.00".
	switch {
	case v >= 99.95:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	case v >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v == 0:
		return "0"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// tableHeader starts the table's first line.
const tableHeader = "workload"

// printTable writes the rows as a table: the median of each figure, its
// floor's and their ratio, or "—" where no floor applies.
func printTable(w io.Writer, rows []*row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, tableHeader+"\tstore\tmedian\tunit\tfloor\tratio")
	for _, r := range rows {
		floor, ratio := "—", "—"
		if r.FloorMedian > 0 {
			floor, ratio = format(r.FloorMedian), strconv.FormatFloat(r.Ratio, 'f', 2, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Figure, r.Store, format(r.Median), r.Unit, floor, ratio)
	}
	return tw.Flush()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
