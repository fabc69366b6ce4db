package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

func TestParseConfig_sqliteSynchronous(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, ""},
		{"flag", []string{"-sqlite-synchronous", "full"}, nil, "FULL"},
		{"environment", nil, map[string]string{envSynchronous: "Normal"}, "NORMAL"},
		{"flag wins", []string{"-sqlite-synchronous", "normal"}, map[string]string{envSynchronous: "full"}, "NORMAL"},
	} {
		c, err := parseConfig(tt.args, envMap(tt.env))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.SQLiteSynchronous != tt.want {
			t.Errorf("%s: SQLiteSynchronous %q, want %q", tt.name, c.SQLiteSynchronous, tt.want)
		}
	}
	for _, args := range [][]string{{"-sqlite-synchronous", "off"}, {"-sqlite-synchronous", "2"}} {
		if _, err := parseConfig(args, envMap(nil)); err == nil || !strings.Contains(err.Error(), "-sqlite-synchronous") {
			t.Errorf("parseConfig(%q): error %v, want one naming -sqlite-synchronous", args, err)
		}
	}
	if _, err := parseConfig(nil, envMap(map[string]string{envSynchronous: "off"})); err == nil ||
		!strings.Contains(err.Error(), envSynchronous) {
		t.Errorf("%s=off: error %v, want one naming it", envSynchronous, err)
	}
}

// -sqlite-synchronous full reaches the connection that writes.
func TestOpenStore_sqliteSynchronous(t *testing.T) {
	t.Parallel()
	for mode, want := range map[string]int{"": 1, "normal": 1, "full": 2} {
		cfg, err := parseConfig([]string{"-db", testdb.SQLitePath(t), "-sqlite-synchronous=" + mode}, envMap(nil))
		if err != nil {
			t.Fatal(err)
		}
		db, err := openStore(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := db.store.(*sqlite.Store).DB().QueryRow("PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("-sqlite-synchronous %q: PRAGMA synchronous %d, want %d", mode, got, want)
		}
		if err := db.close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunMigrate_help(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"migrate", "-h"}, envMap(nil), &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage: tasksd migrate", "-dry-run", "-db", "TASKS_DB", "-postgres", "TASKS_POSTGRES_URL"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("tasksd migrate -h printed no %q:\n%s", want, stdout.String())
		}
	}
	if err := run(t.Context(), []string{"migrate", "extra"}, envMap(nil), &stdout, &stdout); err == nil {
		t.Error("tasksd migrate extra: got nil, want an error")
	}
}

// migrateRun runs tasksd migrate with args and returns its output.
func migrateRun(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), append([]string{"migrate"}, args...), envMap(env), &stdout, &stderr)
	return stdout.String(), err
}

// lastMigration returns the name of the last of migrations.
func lastMigration(t *testing.T, migrations fs.FS) string {
	t.Helper()
	files, err := fs.ReadDir(migrations, ".")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v, %d files", err, len(files))
	}
	return files[len(files)-1].Name()
}

// tasksd migrate -dry-run prints every migration of a new SQLite file and
// creates nothing; tasksd migrate applies them; then both say there is
// nothing left. A schema from a newer tasksd is refused by tasksd migrate
// and by tasksd, each naming both versions.
func TestRunMigrate_SQLite(t *testing.T) {
	t.Parallel()
	path := testdb.SQLitePath(t)
	last := lastMigration(t, sqlite.Migrations)

	out, err := migrateRun(t, map[string]string{"TASKS_DB": path}, "-dry-run")
	if err != nil {
		t.Fatalf("migrate -dry-run: %v", err)
	}
	for _, want := range []string{"is at schema version 0", "-- 0001_init.sql", "CREATE TABLE taskwheel_tasks",
		"-- " + last, "INSERT INTO taskwheel_migrations (version, name) VALUES (1, '0001_init.sql');"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate -dry-run printed no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "+goose") {
		t.Errorf("migrate -dry-run printed goose's annotations:\n%s", out)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("migrate -dry-run: the file: %v, want it not created", err)
	}

	out, err = migrateRun(t, nil, "-db", path)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if !strings.Contains(out, "applied 0001_init.sql") || !strings.Contains(out, last) {
		t.Errorf("migrate printed %q, want the migrations it applied", out)
	}
	for _, args := range [][]string{{"-db", path}, {"-db", path, "-dry-run"}} {
		if out, err := migrateRun(t, nil, args...); err != nil || !strings.Contains(out, "nothing to migrate") {
			t.Errorf("migrate %q again: %q, %v; want nothing to migrate", args, out, err)
		}
	}

	// A newer tasksd migrated it.
	s, err := sqlite.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, latest, err := s.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`INSERT INTO taskwheel_migrations (version, name) VALUES (?, 'future')`, latest+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want := fmt.Sprintf("database schema version %d is newer than this binary's %d", latest+1, latest)
	for _, args := range [][]string{{"-db", path}, {"-db", path, "-dry-run"}} {
		if _, err := migrateRun(t, nil, args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("migrate %q of a newer schema: %v, want an error saying %q", args, err, want)
		}
	}
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"-db", path, "-addr", "127.0.0.1:0"}, envMap(nil), &stdout, &stderr)
	if !errors.Is(err, tasks.ErrSchemaTooNew) || !strings.Contains(err.Error(), want) {
		t.Errorf("tasksd on a newer schema: %v, want it refused, saying %q", err, want)
	}
}

// The same on PostgreSQL.
func TestRunMigrate_Postgres(t *testing.T) {
	t.Parallel()
	db, dsn := testdb.PostgresDSN(t)
	env := map[string]string{"TASKS_POSTGRES_URL": dsn}
	out, err := migrateRun(t, env, "-dry-run")
	if err != nil {
		t.Fatalf("migrate -dry-run: %v", err)
	}
	for _, want := range []string{"PostgreSQL ", "is at schema version 0", "-- 0001_init.sql",
		"CREATE TABLE taskwheel_tasks", "LANGUAGE plpgsql", "-- " + lastMigration(t, postgres.Migrations)} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate -dry-run printed no %q:\n%s", want, out)
		}
	}
	s, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := s.SchemaVersion(t.Context()); v != 0 || err != nil {
		t.Errorf("after migrate -dry-run: schema version %d, %v; want 0", v, err)
	}
	if out, err := migrateRun(t, env); err != nil || !strings.Contains(out, "applied 0001_init.sql") {
		t.Errorf("migrate: %q, %v", out, err)
	}
	v, latest, err := s.SchemaVersion(t.Context())
	if v != latest || err != nil {
		t.Errorf("after migrate: schema version %d, %v; want %d", v, err, latest)
	}
	if _, err := db.Exec(`INSERT INTO taskwheel_migrations (version, name) VALUES ($1, 'future')`, latest+1); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("database schema version %d is newer than this binary's %d", latest+1, latest)
	if _, err := migrateRun(t, env, "-dry-run"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("migrate -dry-run of a newer schema: %v, want an error saying %q", err, want)
	}
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"-postgres", dsn, "-addr", "127.0.0.1:0"},
		envMap(map[string]string{"TASKS_API_KEY": "tw_postgres_migrate_key"}), &stdout, &stderr)
	if !errors.Is(err, tasks.ErrSchemaTooNew) || !strings.Contains(err.Error(), want) {
		t.Errorf("tasksd on a newer schema: %v, want it refused, saying %q", err, want)
	}
}
