// Package testdb opens fresh, empty databases for the tests of package tasks
// and its subpackages: each test its own SQLite file and its own PostgreSQL
// schema, so that tests run in parallel.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
	db, _ := PostgresDSN(t)
	return db
}

// PostgresDSN is [Postgres] that also returns the data source name the
// handle was opened with: TASKS_TEST_POSTGRES_URL with search_path set to
// the new schema. Another process, or another handle (see [WithParam]),
// opened with it works in the same schema. Close such handles before t's
// cleanup drops the schema.
func PostgresDSN(t testing.TB) (db *sql.DB, dsn string) {
	t.Helper()
	SkipWithoutPostgres(t)
	schema := "tw_" + strings.ToLower(rand.Text())
	dsn, err := WithParam(os.Getenv(PostgresURLEnv), "search_path", schema)
	if err != nil {
		t.Fatalf("testdb: %s: %v", PostgresURLEnv, err)
	}
	db, err = sql.Open("pgx", dsn)
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
	return db, dsn
}

// PostgresWith is [PostgresDSN] with the connection parameters params
// added to the data source name and the handle opened with them: pgx's,
// such as default_query_exec_mode, or PostgreSQL's, such as
// application_name. The handle is closed before the schema is dropped.
func PostgresWith(t testing.TB, params map[string]string) (db *sql.DB, dsn string) {
	t.Helper()
	_, dsn = PostgresDSN(t)
	for _, k := range slices.Sorted(maps.Keys(params)) {
		var err error
		if dsn, err = WithParam(dsn, k, params[k]); err != nil {
			t.Fatalf("testdb: %s: %v", k, err)
		}
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("testdb: open PostgreSQL: %v", err)
	}
	db.SetMaxOpenConns(10) // as PostgresDSN's
	t.Cleanup(func() { db.Close() })
	return db, dsn
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

// WithParam returns dsn, a PostgreSQL URL or keyword/value string, with the
// connection parameter key set to value, for example application_name, which
// names the connections in pg_stat_activity. value must not need quoting.
func WithParam(dsn, key, value string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " " + key + "=" + value, nil // keyword/value form: the last one wins
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SQLitePath returns the path of a database file, not yet created, in a
// directory that is removed when t ends.
func SQLitePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "tasks.db")
}
