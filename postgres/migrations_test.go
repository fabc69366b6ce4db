package postgres_test

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/internal/testkit"
	"github.com/taskwheel/tasks/postgres"
)

func TestMigrations_IsAnFS(t *testing.T) {
	t.Parallel()
	if err := fstest.TestFS(postgres.Migrations, "0001_init.sql"); err != nil {
		t.Fatal(err)
	}
}

// openGoose returns a new schema of t's (its database handle and DSN) and
// a goose provider of the library's migrations on it.
func openGoose(t *testing.T) (*sql.DB, string, *goose.Provider) {
	t.Helper()
	db, dsn := testdb.PostgresDSN(t)
	p, err := goose.NewProvider(goose.DialectPostgres, db, postgres.Migrations,
		goose.WithTableName("taskwheel_goose_db_version"))
	if err != nil {
		t.Fatalf("goose.NewProvider: %v", err)
	}
	return db, dsn, p
}

// goose applies Migrations to a new schema, which then has the tables,
// indexes, constraints, functions and triggers that Migrate gives one, is
// at the latest version for Migrate, Open and Engine.Start, and runs tasks
// (hearing of them through the trigger's notifications).
func TestMigrations_Goose(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, dsn, p := openGoose(t)
	res, err := p.Up(ctx)
	if err != nil {
		t.Fatalf("goose Up: %v", err)
	}
	files, err := fs.ReadDir(postgres.Migrations, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(files) {
		t.Errorf("goose applied %d migrations, want %d", len(res), len(files))
	}

	migrated := testdb.Postgres(t)
	ms, err := postgres.New(migrated)
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	want := pgSchema(t, migrated)
	if !strings.Contains(want, "column taskwheel_tasks.id") || !strings.Contains(want, "migration 1 0001_init.sql") {
		t.Fatalf("Migrate's schema lacks the tasks table or its first migration:\n%s", want)
	}
	if got := pgSchema(t, db); got != want {
		t.Errorf("schema after goose differs from Migrate's:\ngoose:\n%s\nMigrate:\n%s", got, want)
	}

	s, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	version, latest, err := s.SchemaVersion(ctx)
	if err != nil || version != latest || latest == 0 {
		t.Errorf("SchemaVersion after goose: got %d, %d, %v; want the latest twice", version, latest, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Errorf("Migrate after goose: %v", err)
	}
	if got := pgSchema(t, db); got != want {
		t.Errorf("Migrate after goose changed the schema:\n%s", got)
	}
	opened, err := postgres.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("Open after goose: %v", err)
	}
	defer opened.Close()
	testkit.RunOneTask(t, opened)
}

// pgSchema returns the schema of db's current schema: its columns,
// constraints, indexes, functions and triggers, with the schema's name
// taken out, and the rows of taskwheel_migrations.
func pgSchema(t *testing.T, db *sql.DB) string {
	t.Helper()
	var schema string
	if err := db.QueryRow(`SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, q := range []string{
		`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable ||
			' default=' || coalesce(column_default, '') FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name NOT LIKE 'taskwheel_goose%' ORDER BY table_name, column_name`,
		`SELECT 'constraint ' || c.conrelid::regclass::text || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
			FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
			WHERE n.nspname = current_schema() AND c.conrelid::regclass::text NOT LIKE 'taskwheel_goose%' ORDER BY 1`,
		`SELECT 'index ' || indexdef FROM pg_indexes
			WHERE schemaname = current_schema() AND tablename NOT LIKE 'taskwheel_goose%' ORDER BY indexname`,
		`SELECT 'function ' || p.proname || ' ' || p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = current_schema() ORDER BY p.proname`,
		`SELECT 'trigger ' || event_object_table || ' ' || trigger_name || ' ' || action_timing || ' ' ||
			event_manipulation || ' ' || action_statement || ' ' || coalesce(action_condition, '')
			FROM information_schema.triggers WHERE trigger_schema = current_schema() ORDER BY 1`,
		`SELECT 'migration ' || version || ' ' || name FROM taskwheel_migrations ORDER BY version`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(strings.ReplaceAll(line, schema+".", "<schema>.") + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

// A schema migrated by a newer version of the package is refused by Open,
// Migrate and Engine.Start, each naming both versions.
func TestMigrate_RefusesANewerSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, dsn := testdb.PostgresDSN(t)
	s, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newer := latest + 1
	if _, err := db.ExecContext(ctx, `INSERT INTO taskwheel_migrations (version, name) VALUES ($1, $2)`,
		newer, fmt.Sprintf("%04d_future.sql", newer)); err != nil {
		t.Fatal(err)
	}
	wantMsg := fmt.Sprintf("database schema version %d is newer than this binary's %d", newer, latest)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, tasks.ErrSchemaTooNew) || !strings.Contains(fmt.Sprint(err), wantMsg) {
			t.Errorf("%s: got %v, want ErrSchemaTooNew saying %q", what, err, wantMsg)
		}
	}
	check("Migrate", s.Migrate(ctx))
	eng, err := tasks.NewEngine(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = eng.Start(ctx)
	check("Start", err)
	if err == nil {
		eng.Stop(ctx)
	}
	opened, err := postgres.Open(ctx, dsn, nil)
	check("Open", err)
	if err == nil {
		opened.Close()
	}
}
