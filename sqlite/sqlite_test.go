package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/sqlstore"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/sqlite"
)

var taskN atomic.Int64

// newTask returns a task to insert, due now, with a unique ID.
func newTask() *tasks.Task {
	return &tasks.Task{
		ID:          fmt.Sprintf("00000000-0000-4000-8000-%012d", taskN.Add(1)),
		AppID:       "app_1",
		EventType:   "test.event",
		Data:        json.RawMessage(`{"n":1}`),
		MaxAttempts: 3,
	}
}

// Stores opened at once on a new file, as two processes starting together
// would open it, all succeed: the second waits, none fails with "database
// is locked".
func TestOpen_ConcurrentOpensOfANewFile(t *testing.T) {
	t.Parallel()
	path := testdb.SQLitePath(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := sqlite.Open(path, nil)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
}

// openAt opens a store on a new database file of t's, at path, closed
// when t ends.
func openAt(t *testing.T) (path string, s *sqlite.Store) {
	t.Helper()
	path = testdb.SQLitePath(t)
	s, err := sqlite.Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return path, s
}

// The database and its -wal and -shm files hold endpoints' signing
// secrets: only their owner may read them.
func TestOpen_FilesAreOwnerOnly(t *testing.T) {
	t.Parallel()
	path, s := openAt(t)
	if _, err := s.Insert(t.Context(), newTask()); err != nil { // the WAL holds it
		t.Fatalf("Insert: %v", err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("mode of %s: got %v, want -rw-------", filepath.Base(name), perm)
		}
	}
}

// F18: two stores on one SQLite file, as two processes would have, with
// inserters and workers on each: no error reaches a caller.
func TestStore_ConcurrentWritersAreNeverLocked(t *testing.T) {
	t.Parallel()
	path := testdb.SQLitePath(t)
	var stores []*sqlite.Store
	for range 2 {
		s, err := sqlite.Open(path, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	const inserters, perInserter = 8, 50
	ctx := t.Context()
	var (
		wg       sync.WaitGroup
		inserted sync.WaitGroup
		mu       sync.Mutex
		done     int
	)
	fail := func(what string, err error) {
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			t.Errorf("%s: %v (want no lock error)", what, err)
		} else {
			t.Errorf("%s: %v", what, err)
		}
	}
	for i := range inserters {
		inserted.Add(1)
		wg.Go(func() {
			defer inserted.Done()
			for range perInserter {
				if _, err := stores[i%2].Insert(ctx, newTask()); err != nil {
					fail("Insert", err)
					return
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { inserted.Wait(); close(finished) }()
	for i := range 2 {
		wg.Go(func() {
			s := stores[i]
			for {
				got, err := s.Claim(ctx, 5, time.Minute)
				if err != nil {
					fail("Claim", err)
					return
				}
				outs := make([]tasks.Outcome, len(got))
				for j, tk := range got {
					outs[j] = tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: tasks.StateCompleted}
				}
				if _, err := s.Finish(ctx, outs); err != nil {
					fail("Finish", err)
					return
				}
				if _, _, err := s.List(ctx, tasks.ListParams{Limit: 10}); err != nil {
					fail("List", err)
					return
				}
				mu.Lock()
				done += len(got)
				mu.Unlock()
				select {
				case <-finished:
					if len(got) == 0 {
						return
					}
				default:
				}
			}
		})
	}
	wg.Wait()
	if want := inserters * perInserter; done != want && !t.Failed() {
		t.Errorf("got %d tasks completed, want %d", done, want)
	}
}

// Config's settings reach the connection that writes; a nil Config means
// the defaults.
func TestOpen_Config(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		cfg         *sqlite.Config
		synchronous int // PRAGMA synchronous: 1 NORMAL, 2 FULL, 3 EXTRA
		busyTimeout int // PRAGMA busy_timeout, in milliseconds
	}{
		{"Nil", nil, 1, 10000},
		{"Zero", &sqlite.Config{}, 1, 10000},
		{"Full", &sqlite.Config{Synchronous: "FULL"}, 2, 10000},
		{"ExtraInLowerCase", &sqlite.Config{Synchronous: "extra"}, 3, 10000},
		{"BusyTimeout", &sqlite.Config{BusyTimeout: 1500 * time.Millisecond}, 1, 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := sqlite.Open(testdb.SQLitePath(t), tc.cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			var synchronous, busyTimeout int
			var mode string
			if err := s.DB().QueryRow("PRAGMA synchronous").Scan(&synchronous); err != nil {
				t.Fatal(err)
			}
			if err := s.DB().QueryRow("PRAGMA busy_timeout").Scan(&busyTimeout); err != nil {
				t.Fatal(err)
			}
			if err := s.DB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if synchronous != tc.synchronous || busyTimeout != tc.busyTimeout || mode != "wal" {
				t.Errorf("got synchronous %d, busy_timeout %d, journal_mode %s; want %d, %d, wal",
					synchronous, busyTimeout, mode, tc.synchronous, tc.busyTimeout)
			}
			var autocheckpoint int
			if err := s.DB().QueryRow("PRAGMA wal_autocheckpoint").Scan(&autocheckpoint); err != nil {
				t.Fatal(err)
			}
			if autocheckpoint != 0 {
				t.Errorf("got wal_autocheckpoint %d, want 0 (the store's goroutine checkpoints)", autocheckpoint)
			}
			var limit int
			if err := s.DB().QueryRow("PRAGMA journal_size_limit").Scan(&limit); err != nil {
				t.Fatal(err)
			}
			if limit != 256<<20 {
				t.Errorf("got journal_size_limit %d, want %d (a WAL that grew past it shrinks when it restarts)", limit, 256<<20)
			}
			if n := s.DB().Stats().MaxOpenConnections; n != 1 {
				t.Errorf("DB: got %d connections at most, want 1 (one writer)", n)
			}
		})
	}
}

// Settings Open refuses are errors that name the field, and create no file.
func TestOpen_BadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		path string
		cfg  *sqlite.Config
		want string
	}{
		{"SynchronousOff", "", &sqlite.Config{Synchronous: "OFF"}, "Config.Synchronous"},
		{"SynchronousUnknown", "", &sqlite.Config{Synchronous: "fast"}, "Config.Synchronous"},
		{"NegativeBusyTimeout", "", &sqlite.Config{BusyTimeout: -time.Second}, "Config.BusyTimeout"},
		{"NoPath", "-", nil, "want the path of a file"},
		{"Memory", ":memory:", nil, "want the path of a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := testdb.SQLitePath(t)
			switch tc.path {
			case "-":
				path = ""
			case "":
			default:
				path = tc.path
			}
			s, err := sqlite.Open(path, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open: got nil error, want one naming %s", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tasks: ") {
				t.Errorf("Open: got %q, want a tasks: error naming %s", err, tc.want)
			}
			if path != "" && path != ":memory:" {
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Stat of %s after a refused Open: got %v, want no file", filepath.Base(path), err)
				}
			}
		})
	}
}

// Close closes the database: the store answers with an error, not a panic.
func TestStore_Close(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(testdb.SQLitePath(t), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Insert(context.Background(), newTask()); err == nil {
		t.Error("Insert after Close: got nil error, want one")
	}
	if err := s.DB().Ping(); !errors.Is(err, sql.ErrConnDone) && (err == nil || !strings.Contains(err.Error(), "closed")) {
		t.Errorf("Ping after Close: got %v, want the database closed", err)
	}
}

// sqlstore.Busy, which package tasks and Open retry on, recognizes the
// SQLITE_BUSY error of mattn/go-sqlite3 by its text.
func TestBusy(t *testing.T) {
	t.Parallel()
	path, s := openAt(t)
	tx, err := s.DB().Begin() // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=0&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.Begin()
	if !sqlstore.Busy(err) {
		t.Errorf("Busy(%v): got false, want true", err)
	}
	if sqlstore.Busy(errors.New("no such table: x")) || sqlstore.Busy(nil) {
		t.Error("Busy of another error or nil: got true, want false")
	}
}
