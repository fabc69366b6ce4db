package tasks_test

// Crash tests (ACCEPTANCE F1, F2, F3, F8, F17, F22): the test binary runs
// itself again as a child process (TestCrashChild) with an engine on a shared
// SQLite file or PostgreSQL schema, and the parent SIGKILLs it while tasks
// run. Each child appends one line per task run to its own file, opened with
// O_APPEND and written with a single write, so a line is either there whole
// or not at all, whenever the child dies; the parent reads those files to
// count the runs of each task.

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

// crashChildEnv carries a child's crashChild, as JSON; TestCrashChild skips
// without it.
const crashChildEnv = "TASKS_TEST_CRASH_CHILD"

// crashLease is the lease of the engines that the crash tests kill: short,
// so that their tasks are rescued quickly. Engines that live use a longer
// one, liveLease, so that a busy machine, delaying their heartbeats, does not
// make them lose leases and run tasks twice.
const (
	crashLease = time.Second
	liveLease  = 5 * time.Second
)

// crashChild tells a child process what to run.
type crashChild struct {
	Store   string        // "sqlite" or "postgres"
	DSN     string        // the SQLite file's path or the PostgreSQL DSN, with search_path
	Out     string        // the file the child appends its run records to
	Workers int           // Config.Workers
	Lease   time.Duration // Config.Lease; 0 means crashLease
	Sleep   time.Duration // how long a "noop" task takes after recording its run
	// Poll is Config.PollInterval; 0 means 100 ms. Each poll reads up to
	// 1,000 upcoming tasks, so a test with a long backlog polls less often.
	Poll time.Duration
	// DieOnFinish makes the child SIGKILL itself when its engine is about to
	// store a completed outcome: after the func succeeded, before the store
	// knows (F2).
	DieOnFinish bool
	// Retain makes the child's engine delete completed tasks as soon as
	// they are done, in small, quick batches (see crash_retention_test.go).
	Retain bool
}

// TestCrashChild is the child process of the crash tests. It runs an engine
// with the funcs "noop" (record the run, then succeed) and "block" (record
// the run, then wait for the context) until its standard input closes, which
// is how the parent stops it gracefully, or until it is killed.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("the crash tests run this in a child process")
	}
	var c crashChild
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatalf("%s: %v", crashChildEnv, err)
	}
	out, err := os.OpenFile(c.Out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	record := func(kind string, id string, attempt int) {
		line := fmt.Appendf(nil, "%s %s %d %d\n", kind, id, attempt, os.Getpid())
		if _, err := out.Write(line); err != nil { // one write: the line is whole or absent
			panic(err)
		}
	}

	store := openChildStore(t, c.Store, c.DSN, 8)
	if c.DieOnFinish {
		store = &dieOnFinish{Store: store, record: record}
	}
	e, err := tasks.NewEngine(store, &tasks.Config{
		RetainCompleted: retainIf(c.Retain), // 0: the default
		Workers:         c.Workers,
		Lease:           cmp.Or(c.Lease, crashLease),
		RescueInterval:  100 * time.Millisecond,
		PollInterval:    cmp.Or(c.Poll, 100*time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Retain {
		retainAtOnce(e)
	}
	e.Register("noop", func(ctx context.Context, task *tasks.Task) error {
		record("run", task.ID, task.Attempts)
		if c.Sleep > 0 {
			select {
			case <-time.After(c.Sleep):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	e.Register("block", func(ctx context.Context, task *tasks.Task) error {
		record("run", task.ID, task.Attempts)
		<-ctx.Done()
		return ctx.Err()
	})
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, os.Stdin) // until the parent closes it, or dies
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// dieOnFinish is a store whose process dies when an attempt's success is
// about to be stored. It hides the optional interfaces of the store it wraps
// (Store.Listen): the engine polls instead.
type dieOnFinish struct {
	tasks.Store
	record func(kind, id string, attempt int)
}

func (s *dieOnFinish) Finish(ctx context.Context, outs []tasks.Outcome) ([]bool, error) {
	for _, o := range outs {
		if o.State == tasks.StateCompleted {
			s.record("succeeded", o.ID, o.Attempt)
			p, err := os.FindProcess(os.Getpid())
			if err == nil {
				err = p.Kill()
			}
			panic(fmt.Sprintf("SIGKILL myself: %v", err)) // not reached
		}
	}
	return s.Store.Finish(ctx, outs)
}

// crashProc is a running child process.
type crashProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   string // its run records
	log   string // its standard output and error
	done  chan struct{}
	err   error // cmd.Wait's, once done is closed
}

// startCrashChild starts a child process running an engine on db with c's
// settings (c.Store, c.DSN and c.Out are filled in). The child is killed, if
// it still runs, when t ends; its log is shown if t failed.
func startCrashChild(t *testing.T, db *crashDB, name string, c crashChild) *crashProc {
	t.Helper()
	dir := t.TempDir()
	c.Store, c.DSN = db.kind, db.dsn
	if db.kind == "postgres" {
		// The fault under test is the client's death, not the server's:
		// commits need not wait for the server's disk, which on a small
		// test machine makes thousands of claims take twice as long.
		var err error
		if c.DSN, err = testdb.WithParam(c.DSN, "synchronous_commit", "off"); err != nil {
			t.Fatal(err)
		}
	}
	c.Out = filepath.Join(dir, name+".runs")
	spec, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return startChild(t, name, c.Out, filepath.Join(dir, name+".log"), "TestCrashChild", crashChildEnv, spec)
}

// startChild starts the test binary again as a child process named name,
// running only the test run with env set to spec, its output into the file
// logPath; out is where it records its runs. The child is killed, if it
// still runs, when t ends; its log is shown if t failed.
func startChild(t *testing.T, name, out, logPath, run, env string, spec []byte) *crashProc {
	t.Helper()
	p := &crashProc{name: name, out: out, log: logPath, done: make(chan struct{})}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	p.cmd = exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v", "-test.timeout=2m")
	p.cmd.Env = append(os.Environ(), env+"="+string(spec))
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("child %s (pid %d), %v; its output:\n%s", p.name, p.pid(), p.err, b)
		}
	})
	return p
}

// openChildStore opens, in a child process, the store of kind ("sqlite" or
// "postgres") at dsn, with at most maxConns connections to PostgreSQL, and
// closes it when t ends.
func openChildStore(t *testing.T, kind, dsn string, maxConns int) tasks.Store {
	t.Helper()
	switch kind {
	case "sqlite":
		s, err := sqlite.Open(dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	case "postgres":
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		db.SetMaxOpenConns(maxConns)
		s, err := postgres.New(db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("unknown store %q", kind)
	return nil
}

func (p *crashProc) pid() int { return p.cmd.Process.Pid }

// kill SIGKILLs the child and waits until it is gone.
func (p *crashProc) kill() {
	p.cmd.Process.Kill() // os.ErrProcessDone if it already ended
	<-p.done
}

// stop closes the child's standard input, which makes it stop its engine
// and exit, and returns its exit error. It kills the child if it has not
// exited within timeout.
func (p *crashProc) stop(timeout time.Duration) error {
	p.stdin.Close()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("child %s did not exit within %v of being asked to stop", p.name, timeout)
	}
}

// crashRun is one line of a child's run records: kind "run" when a func
// started, "succeeded" when a completion was about to be stored.
type crashRun struct {
	kind    string
	id      string
	attempt int
	pid     int
}

// readCrashRuns returns the records in the files at paths.
func readCrashRuns(t *testing.T, paths ...string) []crashRun {
	t.Helper()
	var runs []crashRun
	for _, path := range paths {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // the child has not run anything yet
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 4 {
				f.Close()
				t.Fatalf("%s: malformed line %q", path, sc.Text())
			}
			attempt, err1 := strconv.Atoi(fields[2])
			pid, err2 := strconv.Atoi(fields[3])
			if err1 != nil || err2 != nil {
				f.Close()
				t.Fatalf("%s: malformed line %q", path, sc.Text())
			}
			runs = append(runs, crashRun{fields[0], fields[1], attempt, pid})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return runs
}

// lineCounter counts the lines appended to a file, reading only what is new.
type lineCounter struct {
	path string
	off  int64
	n    int
}

func (c *lineCounter) count(t *testing.T) int {
	t.Helper()
	f, err := os.Open(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, c.off, 1<<40))
	if err != nil {
		t.Fatal(err)
	}
	c.off += int64(len(b))
	c.n += strings.Count(string(b), "\n")
	return c.n
}

// waitFor polls cond every few milliseconds until it holds, or fails t
// after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// crashDB is a database that child processes and the test share.
type crashDB struct {
	kind  string // "sqlite" or "postgres"
	dsn   string // what a child opens: the SQLite file's path, or a DSN with search_path
	store interface {
		tasks.Store
		DB() *sql.DB
	}
	db *sql.DB // for the test's own queries
}

// crashDBs open a fresh, migrated database of each kind.
var crashDBs = []struct {
	name string
	open func(t *testing.T) *crashDB
}{
	{"sqlite", func(t *testing.T) *crashDB {
		path := testdb.SQLitePath(t)
		s, err := sqlite.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &crashDB{kind: "sqlite", dsn: path, store: s, db: s.DB()}
	}},
	{"postgres", func(t *testing.T) *crashDB {
		db, dsn := testdb.PostgresDSN(t)
		s, err := postgres.New(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return &crashDB{kind: "postgres", dsn: dsn, store: s, db: db}
	}},
}

// countCompleted counts the completed tasks with a query of its own.
func (d *crashDB) countCompleted(t *testing.T) int {
	t.Helper()
	var n int
	if err := d.db.QueryRow(`SELECT count(*) FROM taskwheel_tasks WHERE state = 'completed'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// countRescued counts the tasks whose last error is the rescuer's.
func (d *crashDB) countRescued(t *testing.T) int {
	t.Helper()
	var n int
	if err := d.db.QueryRow(`SELECT count(*) FROM taskwheel_tasks WHERE last_error = 'lease expired'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// enqueueMany enqueues n tasks of eventType through e, from a few
// goroutines, each in transactions of up to 500 tasks, and returns their IDs.
func enqueueMany(t *testing.T, e *tasks.Engine, d *crashDB, eventType string, n int) []string {
	t.Helper()
	const batch, goroutines = 500, 4
	parts := make([][]string, (n+batch-1)/batch)
	errs := make([]error, len(parts))
	enqueue := func(i int) error {
		ctx := t.Context()
		tx, err := d.store.DB().BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for range min(batch, n-i*batch) {
			task, err := e.EnqueueTx(ctx, tx, tasks.NewTask{AppID: "app_1", EventType: eventType})
			if err != nil {
				return err
			}
			parts[i] = append(parts[i], task.ID)
		}
		return tx.Commit()
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < len(parts); i += goroutines {
				if errs[i] = enqueue(i); errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return slices.Concat(parts...)
}

// checkSettled is the invariant check after a fault run (ACCEPTANCE "T"):
// the store holds exactly the tasks ids, each once, in one valid state, none
// running; a terminal task has CompletedAt and no due time; a completed one
// had at least one attempt; attempts never exceed MaxAttempts. It returns the
// tasks by ID.
func checkSettled(t *testing.T, e *tasks.Engine, ids []string) map[string]*tasks.Task {
	t.Helper()
	got := make(map[string]*tasks.Task, len(ids))
	p := tasks.ListParams{Limit: tasks.MaxListLimit}
	for {
		page, next, err := e.List(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range page {
			if got[task.ID] != nil {
				t.Errorf("task %s listed twice", task.ID)
			}
			got[task.ID] = task
		}
		if next == "" {
			break
		}
		p.Cursor = next
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
		if got[id] == nil {
			t.Errorf("task %s lost: not in the store", id)
		}
	}
	for id, task := range got {
		if !want[id] {
			t.Errorf("task %s in the store, but never enqueued", id)
		}
		switch {
		case !task.State.Valid():
			t.Errorf("task %s: invalid state %q", id, task.State)
		case task.State == tasks.StateRunning:
			t.Errorf("task %s still running after everything settled (attempt %d, lease until %v)", id, task.Attempts, task.LeaseExpiresAt)
		case task.State.Terminal() && (task.CompletedAt == nil || task.NextAttemptAt != nil || task.LeaseExpiresAt != nil):
			t.Errorf("task %s is %s with completed_at %v, next_attempt_at %v, lease %v; want a completion time only",
				id, task.State, task.CompletedAt, task.NextAttemptAt, task.LeaseExpiresAt)
		case !task.State.Terminal() && (task.CompletedAt != nil || task.NextAttemptAt == nil):
			t.Errorf("task %s is %s with completed_at %v, next_attempt_at %v; want a due time only",
				id, task.State, task.CompletedAt, task.NextAttemptAt)
		case task.State == tasks.StateCompleted && task.Attempts < 1:
			t.Errorf("task %s completed after %d attempts", id, task.Attempts)
		case task.Attempts > task.MaxAttempts:
			t.Errorf("task %s: %d attempts, more than its max %d", id, task.Attempts, task.MaxAttempts)
		}
	}
	return got
}

// TestCrash_SIGKILL kills a child process while its tasks run (F1; F3 for a
// task on its last attempt): the tasks stay running until their leases
// expire; then an engine in this process rescues them, the one with attempts
// left to retrying with the error "lease expired", the other to failed, and
// runs the first again under the same ID. Nothing is lost.
func TestCrash_SIGKILL(t *testing.T) {
	t.Parallel()
	for _, d := range crashDBs {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db := d.open(t)
			producer := newEngine(t, db.store, nil)
			retried := enqueue(t, producer, tasks.NewTask{EventType: "block", MaxAttempts: 3})
			last := enqueue(t, producer, tasks.NewTask{EventType: "block", MaxAttempts: 1})

			child := startCrashChild(t, db, "victim", crashChild{Workers: 2})
			var runs []crashRun
			waitFor(t, 20*time.Second, "the child to run both tasks", func() bool {
				runs = readCrashRuns(t, child.out)
				return len(runs) == 2
			})
			for _, r := range runs {
				if r.kind != "run" || r.attempt != 1 || r.pid != child.pid() || r.id != retried.ID && r.id != last.ID {
					t.Fatalf("child recorded %+v, want a run of attempt 1 of task %s or %s in pid %d", r, retried.ID, last.ID, child.pid())
				}
			}
			child.kill()
			killed := time.Now()
			if child.err == nil || !strings.Contains(child.err.Error(), "killed") {
				t.Errorf("child ended with %v, want killed", child.err)
			}

			// Nothing rescues the tasks yet: they stay running under the dead
			// child's leases.
			leases := map[string]time.Time{}
			for _, id := range []string{retried.ID, last.ID} {
				got, err := producer.Get(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != tasks.StateRunning || got.Attempts != 1 || got.LeaseExpiresAt == nil {
					t.Fatalf("task %s right after the kill: %s, attempt %d, lease %v; want running, 1, a lease",
						id, got.State, got.Attempts, got.LeaseExpiresAt)
				}
				leases[id] = *got.LeaseExpiresAt
			}

			// A live engine with one worker, held by another task, so that
			// the rescued task stays retrying until the test has seen it.
			rescuer := newEngine(t, db.store, &tasks.Config{
				Workers:        1,
				Lease:          liveLease,
				Logger:         slog.New(slog.NewTextHandler(t.Output(), nil)),
				RescueInterval: 50 * time.Millisecond,
				PollInterval:   100 * time.Millisecond,
			})
			release := make(chan struct{})
			rescuer.Register("hold", func(ctx context.Context, task *tasks.Task) error {
				<-release
				return nil
			})
			var mu sync.Mutex
			var reran []*tasks.Task
			rescuer.Register("block", func(ctx context.Context, task *tasks.Task) error {
				mu.Lock()
				defer mu.Unlock()
				reran = append(reran, task)
				return nil
			})
			hold := enqueue(t, rescuer, tasks.NewTask{EventType: "hold"})
			if err := rescuer.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := rescuer.Stop(context.Background()); err != nil {
					t.Errorf("Stop: %v", err)
				}
			})
			defer func() {
				select {
				case <-release:
				default:
					close(release) // the test failed before releasing the worker
				}
			}()

			got := waitState(t, rescuer, retried.ID, tasks.StateRetrying)
			recovered := time.Since(killed)
			if got.Attempts != 1 || got.LastError != "lease expired" || got.NextAttemptAt == nil || got.CompletedAt != nil || got.LeaseExpiresAt != nil {
				t.Errorf("rescued task: %+v; want retrying at attempt 1, last error %q, due, no lease", got, "lease expired")
			}
			if got.UpdatedAt.Before(leases[retried.ID]) {
				t.Errorf("task rescued at %v, before its lease expired at %v", got.UpdatedAt, leases[retried.ID])
			}
			failed := waitState(t, rescuer, last.ID, tasks.StateFailed)
			if failed.Attempts != 1 || failed.LastError != "lease expired" || failed.CompletedAt == nil {
				t.Errorf("rescued task on its last attempt: %+v; want failed at attempt 1, last error %q", failed, "lease expired")
			}
			if failed.UpdatedAt.Before(leases[last.ID]) {
				t.Errorf("task rescued at %v, before its lease expired at %v", failed.UpdatedAt, leases[last.ID])
			}

			close(release)
			done := waitState(t, rescuer, retried.ID, tasks.StateCompleted)
			if done.Attempts != 2 || done.LastError != "lease expired" {
				t.Errorf("completed task: attempts %d, last error %q; want 2, %q", done.Attempts, done.LastError, "lease expired")
			}
			waitState(t, rescuer, hold.ID, tasks.StateCompleted)
			mu.Lock()
			if len(reran) != 1 || reran[0].ID != retried.ID || reran[0].Attempts != 2 || reran[0].LastError != "lease expired" {
				t.Errorf("the live engine ran %d tasks (%+v), want task %s once, at attempt 2, with last error %q",
					len(reran), reran, retried.ID, "lease expired")
			}
			mu.Unlock()
			checkSettled(t, producer, []string{retried.ID, last.ID, hold.ID})
			t.Logf("rescued %v after the kill (lease %v)", recovered.Round(time.Millisecond), crashLease)
		})
	}
}

// TestCrash_AfterSuccess kills a child process after a task's func returned
// nil and before the completion was stored (F2): the task runs again under
// the same ID. Delivery is at least once, as documented.
func TestCrash_AfterSuccess(t *testing.T) {
	t.Parallel()
	for _, d := range crashDBs {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db := d.open(t)
			producer := newEngine(t, db.store, nil)
			task := enqueue(t, producer, tasks.NewTask{EventType: "noop"})
			child := startCrashChild(t, db, "victim", crashChild{Workers: 1, DieOnFinish: true})
			select {
			case <-child.done:
			case <-time.After(20 * time.Second):
				t.Fatal("the child did not die storing the completion")
			}
			runs := readCrashRuns(t, child.out)
			want := []crashRun{{"run", task.ID, 1, child.pid()}, {"succeeded", task.ID, 1, child.pid()}}
			if fmt.Sprint(runs) != fmt.Sprint(want) {
				t.Fatalf("child recorded %v, want %v", runs, want)
			}
			got, err := producer.Get(t.Context(), task.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tasks.StateRunning || got.Attempts != 1 {
				t.Fatalf("task after the crash: %s at attempt %d, want running at 1: the completion was not stored", got.State, got.Attempts)
			}

			reran := make(chan *tasks.Task, 2)
			live := startEngine(t, db.store, &tasks.Config{
				Lease:          liveLease,
				Logger:         slog.New(slog.NewTextHandler(t.Output(), nil)),
				RescueInterval: 50 * time.Millisecond,
			}, map[string]tasks.Func{
				"noop": func(ctx context.Context, task *tasks.Task) error {
					reran <- task
					return nil
				},
			})
			done := waitState(t, live, task.ID, tasks.StateCompleted)
			if r := <-reran; r.ID != task.ID || r.Attempts != 2 || r.LastError != "lease expired" {
				t.Errorf("ran again: %+v; want task %s at attempt 2 after a rescue", r, task.ID)
			}
			if done.Attempts != 2 {
				t.Errorf("completed after %d attempts, want 2", done.Attempts)
			}
			checkSettled(t, producer, []string{task.ID})
		})
	}
}

// TestCrash_ManyProcesses runs thousands of tasks on several child processes
// sharing one database and SIGKILLs one of them midway (F17, F1, F22): every
// task is completed; a task runs twice only if the killed child ran it and
// died before storing its outcome; a rescued task is rescued once.
//
// It does not run in parallel with other tests: it wants the machine's CPUs
// to finish in a few seconds.
func TestCrash_ManyProcesses(t *testing.T) {
	for _, tc := range []struct {
		db           string
		procs, tasks int
	}{
		{"postgres", 3, 10_000},
		{"sqlite", 2, 3_000},
	} {
		t.Run(tc.db, func(t *testing.T) {
			var db *crashDB
			for _, d := range crashDBs {
				if d.name == tc.db {
					db = d.open(t)
				}
			}
			producer := newEngine(t, db.store, nil)
			began := time.Now()
			ids := enqueueMany(t, producer, db, "noop", tc.tasks)
			enqueued := time.Since(began)

			began = time.Now()
			procs := make([]*crashProc, tc.procs)
			counters := make([]*lineCounter, tc.procs)
			for i := range procs {
				// The victim's tasks take longer, so that it has tasks in
				// flight, run but not stored, when it is killed.
				c := crashChild{Workers: 8, Sleep: time.Millisecond, Lease: liveLease, Poll: time.Second}
				if i == 0 {
					c.Sleep, c.Lease = 20*time.Millisecond, crashLease
				}
				procs[i] = startCrashChild(t, db, fmt.Sprint("child", i), c)
				counters[i] = &lineCounter{path: procs[i].out}
			}
			victim := procs[0]

			killAfter := tc.tasks / 5
			waitFor(t, 30*time.Second, fmt.Sprintf("%d runs", killAfter), func() bool {
				total := 0
				for _, c := range counters {
					total += c.count(t)
				}
				return total >= killAfter
			})
			// Kill the victim right after it starts a task, which then takes
			// 20 ms: at least that task is in flight.
			seen := counters[0].count(t)
			waitFor(t, 10*time.Second, "the victim to start a task", func() bool { return counters[0].count(t) > seen })
			victim.kill()
			killed := time.Now()
			victimRuns := counters[0].count(t)

			var rescuedAfter time.Duration
			waitFor(t, 60*time.Second, "every task to complete", func() bool {
				if rescuedAfter == 0 && db.countRescued(t) > 0 {
					rescuedAfter = time.Since(killed)
				}
				return db.countCompleted(t) == tc.tasks
			})
			finished := time.Now()
			for _, p := range procs[1:] {
				if err := p.stop(10 * time.Second); err != nil {
					t.Errorf("child %s: %v", p.name, err)
				}
				// Nothing failed but the victim: the survivors' engines had
				// nothing to complain of ("database is locked", say).
				b, err := os.ReadFile(p.log)
				if err != nil {
					t.Fatal(err)
				}
				for line := range strings.Lines(string(b)) {
					if strings.Contains(line, " ERROR ") || strings.Contains(line, " WARN ") {
						t.Errorf("child %s logged: %s", p.name, line)
					}
				}
			}

			final := checkSettled(t, producer, ids)
			outs := make([]string, len(procs))
			for i, p := range procs {
				outs[i] = p.out
			}
			runs := readCrashRuns(t, outs...)
			twice, rescued, recovery := checkRuns(t, final, runs, func(r crashRun) bool { return r.pid == victim.pid() }, killed)
			t.Logf("%d tasks enqueued in %v; %d processes started; one killed %v later, after %d runs in it; all completed %v after the kill, %v after the start",
				tc.tasks, enqueued.Round(time.Millisecond), tc.procs, killed.Sub(began).Round(time.Millisecond),
				victimRuns, finished.Sub(killed).Round(time.Millisecond), finished.Sub(began).Round(time.Millisecond))
			t.Logf("%d tasks rescued %v after the kill (lease %v), the last of them completed %v after it; %d had run in the killed process and ran again",
				rescued, rescuedAfter.Round(time.Millisecond), crashLease, recovery.Round(time.Millisecond), twice)
			if rescued == 0 || twice == 0 {
				t.Errorf("%d tasks rescued, %d run twice; want some of each: the killed process had a task in flight", rescued, twice)
			}
		})
	}
}

// checkRuns checks the runs recorded for the tasks final, which must all be
// completed. lost reports whether a run's outcome may have been lost (its
// process was killed, its connection dropped), so that its task may run
// again. Each task ran at least once, never twice at the same attempt, and
// completed at its last recorded attempt; it ran twice at most, and then
// only after a run that may have been lost. A task claimed more than once
// was rescued once, from a lease that expired. checkRuns returns how many
// tasks ran twice, how many were claimed more than once, and the latest
// completion among those, after since.
func checkRuns(t *testing.T, final map[string]*tasks.Task, runs []crashRun, lost func(crashRun) bool, since time.Time) (twice, reclaimed int, recovery time.Duration) {
	t.Helper()
	byID := map[string][]crashRun{}
	for _, r := range runs {
		if r.kind != "run" {
			continue
		}
		if final[r.id] == nil {
			t.Errorf("recorded a run of task %s, which was never enqueued", r.id)
			continue
		}
		byID[r.id] = append(byID[r.id], r)
	}
	errs := 0
	errorf := func(format string, args ...any) {
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	for id, task := range final {
		rs := byID[id]
		slices.SortFunc(rs, func(a, b crashRun) int { return a.attempt - b.attempt })
		if task.State != tasks.StateCompleted {
			errorf("task %s is %s (last error %q), want completed", id, task.State, task.LastError)
			continue
		}
		switch {
		case len(rs) == 0:
			errorf("task %s completed but never ran", id)
		case len(rs) == 2 && rs[0].attempt == rs[1].attempt:
			errorf("task %s: attempt %d ran twice: %v", id, rs[0].attempt, rs)
		case len(rs) > 2:
			errorf("task %s ran %d times: %v", id, len(rs), rs)
		case rs[len(rs)-1].attempt != task.Attempts:
			errorf("task %s completed at attempt %d, but its last recorded run was attempt %d", id, task.Attempts, rs[len(rs)-1].attempt)
		case len(rs) == 2 && !lost(rs[0]):
			errorf("task %s ran twice, though its first run's outcome was not lost: %v", id, rs)
		case len(rs) == 2:
			twice++
		}
		if task.Attempts > 1 {
			reclaimed++
			if task.Attempts != 2 || task.LastError != "lease expired" {
				errorf("task %s completed at attempt %d after the error %q, want attempt 2 after one rescue (%q)",
					id, task.Attempts, task.LastError, "lease expired")
			}
			recovery = max(recovery, task.CompletedAt.Sub(since))
		}
	}
	if errs > 20 {
		t.Errorf("... and %d more", errs-20)
	}
	return twice, reclaimed, recovery
}

// TestCrash_TerminateBackend drops the engine's database connections with
// pg_terminate_backend (F8): the engine backs off and recovers by itself, and
// every task is completed.
func TestCrash_TerminateBackend(t *testing.T) {
	t.Parallel()
	testdb.SkipWithoutPostgres(t)
	t.Run("mid-claim", func(t *testing.T) {
		t.Parallel()
		f := newF8(t)
		const n = 50
		ids := enqueueMany(t, f.e, f.db, "noop", n)
		// Writers wait for this lock, so the engine's first claim blocks in
		// the middle of its UPDATE, where the test kills its connection.
		lock, err := f.db.db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Rollback()
		if _, err := lock.Exec(`LOCK TABLE taskwheel_tasks IN EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		f.start(t)
		var pid int
		waitFor(t, 10*time.Second, "a claim to wait for the lock", func() bool {
			err := f.db.db.QueryRow(`SELECT pid FROM pg_stat_activity
WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE '%attempts = attempts + 1%'`, f.app).Scan(&pid)
			if errors.Is(err, sql.ErrNoRows) {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			return true
		})
		var ok bool
		if err := f.db.db.QueryRow(`SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend = %v, %v", ok, err)
		}
		if err := lock.Rollback(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "every task to complete", func() bool { return f.db.countCompleted(t) == n })
		f.stop(t)
		if !strings.Contains(f.logs.String(), "claim tasks; backing off") {
			t.Errorf("the engine logged no failed claim:\n%s", f.logs.String())
		}
		// The killed claim rolled back: it counted no attempt, and no task
		// waited for a lease to expire.
		for id, task := range checkSettled(t, f.e, ids) {
			if task.Attempts != 1 || task.LastError != "" {
				t.Errorf("task %s: attempts %d, last error %q; want 1, none", id, task.Attempts, task.LastError)
			}
		}
		checkRuns(t, checkSettled(t, f.e, ids), f.runs(), func(crashRun) bool { return false }, time.Time{})
	})
	t.Run("again and again under load", func(t *testing.T) {
		t.Parallel()
		f := newF8(t)
		const n, kills = 3000, 10
		ids := enqueueMany(t, f.e, f.db, "noop", n)
		f.start(t)
		began := time.Now()
		terminated := 0
		for i := range kills {
			waitFor(t, 30*time.Second, "tasks to run", func() bool { return len(f.runs()) >= (i+1)*n/(kills+2) })
			// Terminate in the select list, not in WHERE, whose conditions
			// PostgreSQL may evaluate in any order.
			var k int
			err := f.db.db.QueryRow(`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`, f.app).Scan(&k)
			if err != nil {
				t.Fatal(err)
			}
			terminated += k
		}
		waitFor(t, 30*time.Second, "every task to complete", func() bool { return f.db.countCompleted(t) == n })
		took := time.Since(began)
		f.stop(t)
		if terminated == 0 {
			t.Errorf("no connection was terminated: the test injected no fault")
		}
		// Any outcome may have been lost with a connection.
		twice, reclaimed, _ := checkRuns(t, checkSettled(t, f.e, ids), f.runs(), func(crashRun) bool { return true }, began)
		logs := f.logs.String()
		t.Logf("%d tasks in %v; terminated %d connections in %d rounds; the engine logged %d errors (%d failed claims); %d tasks claimed again after a lost lease, %d ran twice",
			n, took.Round(time.Millisecond), terminated, kills, strings.Count(logs, "level=ERROR"),
			strings.Count(logs, "claim tasks; backing off"), reclaimed, twice)
	})
}

// f8 is an engine on PostgreSQL whose connections the test can tell apart
// by their application_name.
type f8 struct {
	e    *tasks.Engine
	db   *crashDB // db.db is the test's own handle, for queries and kills
	app  string   // the engine's connections' application_name
	logs syncBuffer

	mu      sync.Mutex
	ran     []crashRun
	stopped bool
}

func newF8(t *testing.T) *f8 {
	t.Helper()
	admin, dsn := testdb.PostgresDSN(t)
	f := &f8{app: "taskwheel_f8_" + strings.ToLower(rand.Text()[:10])}
	dsn, err := testdb.WithParam(dsn, "application_name", f.app)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // before the schema is dropped
	store, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.db = &crashDB{kind: "postgres", dsn: dsn, store: store, db: admin}
	f.e = newEngine(t, store, &tasks.Config{
		Workers:        8,
		Lease:          liveLease,
		RescueInterval: 100 * time.Millisecond,
		PollInterval:   100 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(&f.logs, nil)),
	})
	f.e.Register("noop", func(ctx context.Context, task *tasks.Task) error {
		f.mu.Lock()
		f.ran = append(f.ran, crashRun{"run", task.ID, task.Attempts, os.Getpid()})
		f.mu.Unlock()
		time.Sleep(time.Millisecond)
		return nil
	})
	t.Cleanup(func() {
		if !f.stopped {
			f.e.Stop(context.Background())
		}
	})
	return f
}

func (f *f8) start(t *testing.T) {
	t.Helper()
	if err := f.e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func (f *f8) stop(t *testing.T) {
	t.Helper()
	f.stopped = true
	if err := f.e.Stop(t.Context()); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// runs returns the runs so far.
func (f *f8) runs() []crashRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ran)
}

// TestCrash_PeriodicAcrossProcesses runs a periodic task on engines in
// separate processes sharing one database, three on PostgreSQL and two on
// SQLite: every slot gets exactly one task, none is skipped, and each task
// runs once.
func TestCrash_PeriodicAcrossProcesses(t *testing.T) {
	t.Parallel()
	for i, d := range crashDBs {
		procs := []int{2, 3}[i]
		t.Run(fmt.Sprintf("%s/%d processes", d.name, procs), func(t *testing.T) {
			t.Parallel()
			db := d.open(t)
			var children []*crashProc
			for n := range procs {
				children = append(children, startCrashChild(t, db, fmt.Sprintf("p%d", n), crashChild{Workers: 4, Lease: liveLease}))
			}
			admin, err := tasks.NewEngine(db.store, nil) // creates, runs nothing
			if err != nil {
				t.Fatal(err)
			}
			if _, err := admin.CreatePeriodic(t.Context(), tasks.NewPeriodic{
				AppID: "app_1", Spec: "*/1 * * * * *", EventType: "noop", Data: json.RawMessage(`{}`),
			}); err != nil {
				t.Fatal(err)
			}
			count := func() int {
				var n int
				if err := db.db.QueryRow(`SELECT COUNT(*) FROM taskwheel_tasks WHERE state = 'completed'`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			waitFor(t, 20*time.Second, "five slots run", func() bool { return count() >= 5 })
			var outs []string
			for _, c := range children {
				if err := c.stop(10 * time.Second); err != nil {
					t.Errorf("child %s: %v", c.name, err)
				}
				outs = append(outs, c.out)
			}
			rows, err := db.db.Query(`SELECT idempotency_key FROM taskwheel_tasks ORDER BY idempotency_key`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var slots []time.Time
			for rows.Next() {
				var key string
				if err := rows.Scan(&key); err != nil {
					t.Fatal(err)
				}
				// periodic:<id>:<slot>, and the ID, a UUID, has no colon.
				at, err := time.Parse(time.RFC3339, strings.SplitN(key, ":", 3)[2])
				if err != nil {
					t.Fatalf("key %q: %v", key, err)
				}
				slots = append(slots, at)
			}
			for i := 1; i < len(slots); i++ {
				if gap := slots[i].Sub(slots[i-1]); gap != time.Second {
					t.Errorf("slots %v and %v are %v apart, want one task a second, none twice, none skipped", slots[i-1], slots[i], gap)
				}
			}
			ran := map[string]int{}
			for _, r := range readCrashRuns(t, outs...) {
				if r.kind == "run" {
					ran[r.id]++
				}
			}
			for id, n := range ran {
				if n != 1 {
					t.Errorf("task %s ran %d times, want once", id, n)
				}
			}
			if len(slots) < 5 || len(ran) < 5 {
				t.Errorf("%d slots with tasks, %d tasks run; want at least 5 of each", len(slots), len(ran))
			}
		})
	}
}
