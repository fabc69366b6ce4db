package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

// parseSynchronous reads -sqlite-synchronous: normal or full (or extra),
// in any case, as sqlite.Config.Synchronous takes it.
func parseSynchronous(v string) (string, error) {
	switch mode := strings.ToUpper(v); mode {
	case "NORMAL", "FULL", "EXTRA":
		return mode, nil
	}
	return "", fmt.Errorf("-sqlite-synchronous (%s) = %q: want normal or full", envSynchronous, v)
}

const migrateUsage = `tasksd migrate applies the migrations of the database's tables that it
lacks, in one transaction, and exits; tasksd does the same as it starts. With
-dry-run it prints the SQL it would run instead, and applies nothing.

Usage: tasksd migrate [-dry-run] [-db path | -postgres url]

  -dry-run                      print the SQL of the migrations the database
                                lacks, as migrating would run it; change nothing
  -db path                      TASKS_DB        SQLite database file (default
                                                "tasks.db"); created if missing,
                                                unless -dry-run
  -postgres url                 TASKS_POSTGRES_URL
                                                migrate this PostgreSQL database
                                                instead (its search_path's schema)

A database whose schema a newer tasksd migrated is refused, naming both
versions: run the newer tasksd on it.
`

// migrateConfig is the settings of tasksd migrate.
type migrateConfig struct {
	DryRun   bool
	DB       string // SQLite file; unused with Postgres
	Postgres string // PostgreSQL URL or keyword/value DSN; "" for SQLite
}

// parseMigrateConfig reads the settings of tasksd migrate from args and
// getenv, as parseConfig does tasksd's.
func parseMigrateConfig(args []string, getenv func(string) string) (*migrateConfig, error) {
	fs := flag.NewFlagSet("tasksd migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &migrateConfig{DB: defaultDB}
	fs.BoolVar(&c.DryRun, "dry-run", false, "")
	fs.StringVar(&c.DB, "db", c.DB, "")
	fs.StringVar(&c.Postgres, "postgres", "", "")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("migrate: %w (run tasksd migrate -h)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("migrate: unexpected argument %q (flags only; run tasksd migrate -h)", fs.Arg(0))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if v := getenv(envDB); v != "" && !set["db"] {
		c.DB = v
	}
	if v := getenv(envPostgres); v != "" && !set["postgres"] {
		c.Postgres = v
	}
	switch {
	case c.Postgres == "" && c.DB == "":
		return nil, errors.New("migrate: -db (TASKS_DB) must not be empty")
	case c.Postgres == "" && c.DB == ":memory:":
		return nil, errors.New("migrate: -db (TASKS_DB) must name a file, not :memory:")
	}
	return c, nil
}

// runMigrate is tasksd migrate: it migrates the database, or with -dry-run
// prints the SQL that migrating would run, and writes what it did to
// stdout.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c, err := parseMigrateConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		_, err := io.WriteString(stdout, migrateUsage)
		return err
	}
	if err != nil {
		return err
	}
	desc, version, latest, err := schemaVersion(ctx, c)
	if err != nil {
		return err
	}
	if version > latest {
		return fmt.Errorf("migrate %s: database schema version %d is newer than this binary's %d: a newer tasksd migrated it; run that one",
			desc, version, latest)
	}
	pending, err := pendingMigrations(c, version)
	if err != nil {
		return err
	}
	if len(pending) == 0 {
		_, err := fmt.Fprintf(stdout, "%s is at schema version %d, this binary's: nothing to migrate.\n", desc, version)
		return err
	}
	if c.DryRun {
		return printMigrations(stdout, c, desc, version, latest, pending)
	}
	if err := migrate(ctx, c); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s migrated from schema version %d to %d: applied %s.\n",
		desc, version, latest, strings.Join(pending, ", "))
	return err
}

// schemaVersion returns a description of c's database, the version of its
// schema and the latest this binary has, changing nothing: a SQLite file
// that does not exist is at version 0.
func schemaVersion(ctx context.Context, c *migrateConfig) (desc string, version, latest int, err error) {
	if c.Postgres != "" {
		desc = "PostgreSQL " + redactDSN(c.Postgres)
		db, err := sql.Open("pgx", c.Postgres) // the driver of package postgres
		if err != nil {
			return desc, 0, 0, fmt.Errorf("%s: %w", desc, err)
		}
		defer db.Close()
		s, err := postgres.New(db)
		if err != nil {
			return desc, 0, 0, fmt.Errorf("%s: %w", desc, err)
		}
		version, latest, err = s.SchemaVersion(ctx)
		if err != nil {
			return desc, 0, 0, fmt.Errorf("%s: %w", desc, err)
		}
		return desc, version, latest, nil
	}
	path, err := filepath.Abs(c.DB)
	if err != nil {
		return "", 0, 0, fmt.Errorf("open SQLite %s: %w", c.DB, err)
	}
	c.DB, desc = path, "SQLite "+path
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path) + "?mode=ro"
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// Nothing to read; and opening it, even read-only, would create
		// it. An in-memory database tells the latest version.
		uri = "file::memory:"
	}
	db, err := sql.Open("sqlite3", uri) // the driver of package sqlite
	if err != nil {
		return desc, 0, 0, fmt.Errorf("%s: %w", desc, err)
	}
	defer db.Close()
	s, err := tasks.NewSQLStore(db, tasks.SQLite)
	if err != nil {
		return desc, 0, 0, fmt.Errorf("%s: %w", desc, err)
	}
	version, latest, err = s.SchemaVersion(ctx)
	if err != nil {
		return desc, 0, 0, fmt.Errorf("%s: %w", desc, err)
	}
	return desc, version, latest, nil
}

// migrations returns the migrations of c's dialect.
func migrations(c *migrateConfig) fs.FS {
	if c.Postgres != "" {
		return postgres.Migrations
	}
	return sqlite.Migrations
}

// pendingMigrations returns the names of the migrations after version, in
// order.
func pendingMigrations(c *migrateConfig, version int) ([]string, error) {
	files, err := fs.ReadDir(migrations(c), ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		prefix, _, _ := strings.Cut(f.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if err != nil {
			return nil, fmt.Errorf("migration %s: no version", f.Name())
		}
		if v > version {
			names = append(names, f.Name())
		}
	}
	return names, nil
}

// printMigrations prints the SQL of the migrations named pending as
// migrating would run it: each file's statements, then those recording it
// in taskwheel_migrations (the lines of goose's annotations left out).
func printMigrations(w io.Writer, c *migrateConfig, desc string, version, latest int, pending []string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "-- tasksd migrate -dry-run: %s is at schema version %d; this binary's is %d.\n"+
		"-- Migrating runs the SQL below in one transaction. Nothing was applied.\n", desc, version, latest)
	for _, name := range pending {
		b, err := fs.ReadFile(migrations(c), name)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "\n-- %s\n", name)
		for line := range strings.Lines(string(b)) {
			if !strings.HasPrefix(line, "-- +goose ") {
				bw.WriteString(line)
			}
		}
	}
	return bw.Flush()
}

// migrate opens c's database as tasksd does, which migrates it, and closes
// it.
func migrate(ctx context.Context, c *migrateConfig) error {
	if c.Postgres != "" {
		s, err := postgres.Open(ctx, c.Postgres, nil)
		if err != nil {
			return fmt.Errorf("PostgreSQL %s: %w", redactDSN(c.Postgres), err)
		}
		return s.Close()
	}
	s, err := sqlite.Open(c.DB, nil)
	if err != nil {
		return err
	}
	return s.Close()
}
