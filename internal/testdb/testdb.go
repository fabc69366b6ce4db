// Package testdb opens fresh, empty databases for the tests of package tasks
// and its subpackages: each test its own SQLite file and its own PostgreSQL
// schema, so that tests run in parallel.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// Environment variables that Postgres reads.
const (
	// PostgresURLEnv names the PostgreSQL database to test on, as a URL
	// (postgres://postgres@127.0.0.1:5432/test?sslmode=disable) or as
	// keyword/value pairs.
	PostgresURLEnv = "TASKS_TEST_POSTGRES_URL"
	// RequirePostgresEnv, set to 1, makes a test that has no PostgreSQL
	// database fail instead of skipping, as CI wants.
	RequirePostgresEnv = "TASKS_TEST_REQUIRE_POSTGRES"
)

// Postgres returns a database handle, opened with the driver
// github.com/jackc/pgx/v5/stdlib, whose search_path is a new empty schema
// in the database that TASKS_TEST_POSTGRES_URL names. The schema is dropped
// and the handle closed when t ends. Without TASKS_TEST_POSTGRES_URL,
// Postgres skips t, or fails it if TASKS_TEST_REQUIRE_POSTGRES is 1.
func Postgres(t testing.TB) *sql.DB {
	t.Helper()
	SkipWithoutPostgres(t)
	dsn := os.Getenv(PostgresURLEnv)
	schema := "tw_" + strings.ToLower(rand.Text())
	dsn, err := withSearchPath(dsn, schema)
	if err != nil {
		t.Fatalf("testdb: %s: %v", PostgresURLEnv, err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("testdb: open PostgreSQL: %v", err)
	}
	// Bound each test's connections: tests run in parallel, and the server
	// allows 100 by default.
	db.SetMaxOpenConns(10)
	ctx := context.WithoutCancel(t.Context())
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatalf("testdb: create schema: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testdb: drop schema: %v", err)
		}
	})
	return db
}

// SkipWithoutPostgres skips t if TASKS_TEST_POSTGRES_URL is not set, or
// fails it if TASKS_TEST_REQUIRE_POSTGRES is 1.
func SkipWithoutPostgres(t testing.TB) {
	t.Helper()
	if os.Getenv(PostgresURLEnv) != "" {
		return
	}
	if os.Getenv(RequirePostgresEnv) == "1" {
		t.Fatalf("testdb: %s is not set and %s=1", PostgresURLEnv, RequirePostgresEnv)
	}
	t.Skipf("testdb: %s is not set", PostgresURLEnv)
}

// withSearchPath returns dsn with search_path set to schema.
func withSearchPath(dsn, schema string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema, nil // keyword/value form
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SQLitePath returns the path of a database file, not yet created, in a
// directory that is removed when t ends.
func SQLitePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "tasks.db")
}
