package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

// The engine learns of other engines' tasks through Listen: Store listens,
// and the root's SQLStore, which imports no driver, says it cannot.
func TestSQLStoreDoesNotListen(t *testing.T) {
	t.Parallel()
	err := (&tasks.SQLStore{}).Listen(t.Context(), func() {}, func(tasks.Due) {})
	if !errors.Is(err, tasks.ErrNotSupported) {
		t.Errorf("SQLStore.Listen = %v, want ErrNotSupported; only *postgres.Store, which has pgx, listens", err)
	}
}

// Open sizes its pool, migrates, and Close closes the pool.
func TestOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  *postgres.Config
		want int
	}{
		{"Nil", nil, postgres.DefaultMaxConns},
		{"Zero", &postgres.Config{}, postgres.DefaultMaxConns},
		{"MaxConns", &postgres.Config{MaxConns: 5}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, dsn := testdb.PostgresDSN(t)
			s, err := postgres.Open(t.Context(), dsn, tc.cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := s.DB().Stats().MaxOpenConnections; got != tc.want {
				t.Errorf("pool: got %d connections at most, want %d", got, tc.want)
			}
			task := &tasks.Task{ID: "00000000-0000-4000-8000-000000000001", AppID: "a", EventType: "e", MaxAttempts: 1}
			if _, err := s.Insert(t.Context(), task); err != nil {
				t.Errorf("Insert into the migrated store: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.DB().Ping(); err == nil {
				t.Error("Ping after Close: got nil, want the pool closed")
			}
		})
	}
}

// Open takes every value of taskwheel.synchronous_claims that PostgreSQL
// reads as a boolean, and none (TestOpen_Errors has one it does not).
func TestOpen_SynchronousClaims(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "on", "OFF", "yes", "0", "tru"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			_, dsn := testdb.PostgresDSN(t)
			url, err := testdb.WithParam(dsn, "options", "-ctaskwheel.synchronous_claims="+v)
			if err != nil {
				t.Fatal(err)
			}
			s, err := postgres.Open(t.Context(), url, nil)
			if err != nil {
				t.Fatalf("Open with taskwheel.synchronous_claims=%q: %v", v, err)
			}
			s.Close()
		})
	}
}

// Open's errors start "tasks: ", name what is wrong and never show a password.
func TestOpen_Errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url string
		cfg       *postgres.Config
		want      string
	}{
		{"OneConn", "postgres://u@127.0.0.1:1/db", &postgres.Config{MaxConns: 1}, "Config.MaxConns"},
		{"NegativeMaxConns", "postgres://u@127.0.0.1:1/db", &postgres.Config{MaxConns: -3}, "Config.MaxConns"},
		{"NegativeMaxIdleTime", "postgres://u@127.0.0.1:1/db", &postgres.Config{MaxIdleTime: -time.Second}, "Config.MaxIdleTime"},
		{"BadURL", "postgres://u:s3cret@127.0.0.1:notaport/db", nil, "cannot parse"},
		// An unset variable, not pgx's empty keyword/value string that
		// takes the PG* environment's database, or localhost's.
		{"EmptyURL", "", nil, "empty URL"},
		{"Unreachable", "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2", nil, "tasks: migrate"},
		// Claims would read it as off: the opposite of what was meant.
		{"SynchronousClaimsNotABoolean", "options=-ctaskwheel.synchronous_claims=onn", nil, `taskwheel.synchronous_claims: got "onn"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if strings.HasPrefix(tc.url, "options=") { // on the test database
				_, dsn := testdb.PostgresDSN(t)
				var err error
				if tc.url, err = testdb.WithParam(dsn, "options", strings.TrimPrefix(tc.url, "options=")); err != nil {
					t.Fatal(err)
				}
			}
			s, err := postgres.Open(context.Background(), tc.url, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open: got nil error, want one naming %q", tc.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "tasks: ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "s3cret") {
				t.Errorf("Open: got %q, want a tasks: error naming %q, without the password", msg, tc.want)
			}
		})
	}
}

// New builds on the caller's pool, which Close leaves open, and refuses a
// database of another driver, with which Listen could not work.
func TestNew(t *testing.T) {
	t.Parallel()
	t.Run("CallersPool", func(t *testing.T) {
		t.Parallel()
		db := testdb.Postgres(t)
		s, err := postgres.New(db)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if s.DB() != db {
			t.Error("DB: got another pool, want the caller's")
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := db.PingContext(t.Context()); err != nil {
			t.Errorf("Ping after Close: got %v, want nil (the caller's pool stays open)", err)
		}
	})
	t.Run("OtherDriver", func(t *testing.T) {
		t.Parallel()
		db := sql.OpenDB(otherConnector{})
		defer db.Close()
		if _, err := postgres.New(db); err == nil || !strings.Contains(err.Error(), "pgx/v5/stdlib") {
			t.Errorf("New on another driver's database: got %v, want an error naming pgx/v5/stdlib", err)
		}
	})
	t.Run("Nil", func(t *testing.T) {
		t.Parallel()
		if _, err := postgres.New(nil); err == nil {
			t.Error("New(nil): got nil error, want one")
		}
	})
}

// otherConnector is a database/sql driver other than pgx's.
type otherConnector struct{}

func (otherConnector) Connect(context.Context) (driver.Conn, error) { return nil, errors.New("no") }
func (c otherConnector) Driver() driver.Driver                      { return otherDriver{} }

type otherDriver struct{}

func (otherDriver) Open(string) (driver.Conn, error) { return nil, errors.New("no") }

// Listen calls listening once it listens, then notify with each task
// stored in the schema, by any store, and returns when ctx ends.
func TestStore_Listen(t *testing.T) {
	t.Parallel()
	_, dsn := testdb.PostgresDSN(t)
	listener, err := postgres.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	producer, err := postgres.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()

	ctx, cancel := context.WithCancel(t.Context())
	listening := make(chan struct{})
	notified := make(chan tasks.Due, 1)
	returned := make(chan error, 1)
	go func() {
		returned <- listener.Listen(ctx, func() { close(listening) }, func(d tasks.Due) { notified <- d })
	}()
	select {
	case <-listening:
	case err := <-returned:
		t.Fatalf("Listen returned %v before listening", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not start listening")
	}
	task, err := producer.Insert(t.Context(), &tasks.Task{ID: "00000000-0000-4000-8000-000000000002", AppID: "a", EventType: "e", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-notified:
		if d.ID != task.ID || !d.RunAt.Equal(task.NextAttemptAt.UTC()) {
			t.Errorf("notify: got %+v, want %s at %v", d, task.ID, task.NextAttemptAt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification of the stored task")
	}
	cancel()
	select {
	case err := <-returned:
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "tasks: listen: ") {
			t.Errorf("Listen after ctx ended: got %v, want a tasks: listen: error wrapping context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after ctx ended")
	}
}
