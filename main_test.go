package tasks_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

// exampleRoot holds the files examples make; TestMain removes it.
var exampleRoot string

// tempDir returns a new directory for an example, which has no t.TempDir.
func tempDir() (string, error) { return os.MkdirTemp(exampleRoot, "example") }

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	var err error
	if exampleRoot, err = os.MkdirTemp("", "tasks-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(exampleRoot)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testStores lists every store the engine tests run on, each opened fresh
// and empty for the test that asks.
var testStores = []struct {
	name string
	open func(tb testing.TB) tasks.Store
}{
	{"memory", func(testing.TB) tasks.Store { return tasks.NewMemoryStore() }},
	{"sqlite", func(tb testing.TB) tasks.Store {
		s, err := sqlite.Open(testdb.SQLitePath(tb), nil)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(tb testing.TB) tasks.Store {
		s, err := postgres.New(testdb.Postgres(tb))
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() }) // before the database's: sends the last wake-ups
		return s
	}},
}
