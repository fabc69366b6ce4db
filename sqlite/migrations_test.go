package sqlite_test

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
	"github.com/taskwheel/tasks/sqlite"
)

func TestMigrations_IsAnFS(t *testing.T) {
	t.Parallel()
	if err := fstest.TestFS(sqlite.Migrations, "0001_init.sql"); err != nil {
		t.Fatal(err)
	}
}

// goose applies Migrations to a new database, which then has the schema
// that Migrate gives one, is at the latest version for Migrate, Open and
// Engine.Start, and runs tasks.
// openGoose opens a new SQLite database file of t's, at path, closed when
// t ends, and a goose provider of the library's migrations on it.
func openGoose(t *testing.T) (path string, db *sql.DB, p *goose.Provider) {
	t.Helper()
	path = testdb.SQLitePath(t)
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err = goose.NewProvider(goose.DialectSQLite3, db, sqlite.Migrations,
		goose.WithTableName("taskwheel_goose_db_version"))
	if err != nil {
		t.Fatalf("goose.NewProvider: %v", err)
	}
	return path, db, p
}

func TestMigrations_Goose(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path, db, p := openGoose(t)
	res, err := p.Up(ctx)
	if err != nil {
		t.Fatalf("goose Up: %v", err)
	}
	files, err := fs.ReadDir(sqlite.Migrations, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(files) {
		t.Errorf("goose applied %d migrations, want %d", len(res), len(files))
	}

	want := sqliteSchema(t, migratedSQLite(t))
	if !strings.Contains(want, "table taskwheel_tasks") || !strings.Contains(want, "migration 1 0001_init.sql") {
		t.Fatalf("Migrate's schema lacks the tasks table or its first migration:\n%s", want)
	}
	if got := sqliteSchema(t, db); got != want {
		t.Errorf("schema after goose differs from Migrate's:\ngoose:\n%s\nMigrate:\n%s", got, want)
	}

	st, err := tasks.NewSQLStore(db, tasks.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	version, latest, err := st.SchemaVersion(ctx)
	if err != nil || version != latest || latest == 0 {
		t.Errorf("SchemaVersion after goose: got %d, %d, %v; want the latest twice", version, latest, err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Errorf("Migrate after goose: %v", err)
	}
	if got := sqliteSchema(t, db); got != want {
		t.Errorf("Migrate after goose changed the schema:\n%s", got)
	}
	db.Close()

	s, err := sqlite.Open(path, nil)
	if err != nil {
		t.Fatalf("Open after goose: %v", err)
	}
	defer s.Close()
	testkit.RunOneTask(t, s)
}

// migratedSQLite returns a new database that Open migrated.
func migratedSQLite(t *testing.T) *sql.DB {
	t.Helper()
	s, err := sqlite.Open(testdb.SQLitePath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.DB()
}

// sqliteSchema returns the schema of db, as its CREATE statements, and the
// rows of taskwheel_migrations.
func sqliteSchema(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.Query(`SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master
		WHERE name NOT LIKE 'taskwheel_goose%' AND name NOT LIKE 'sqlite_%' ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name, table, text string
		if err := rows.Scan(&typ, &name, &table, &text); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s on %s: %s\n", typ, name, table, text)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = db.Query(`SELECT version, name FROM taskwheel_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "migration %d %s\n", v, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A database migrated by a newer version of the package is refused by
// Open, Migrate and Engine.Start, each naming both versions; one not
// migrated yet is refused by Engine.Start.
func TestMigrate_RefusesANewerSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := testdb.SQLitePath(t)
	s, err := sqlite.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newer := latest + 1
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO taskwheel_migrations (version, name) VALUES (?, ?)`,
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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(path, nil)
	check("Open", err)

	// Not migrated: Start says so.
	db, err := sql.Open("sqlite3", "file:"+testdb.SQLitePath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE taskwheel_tasks (id TEXT)`); err != nil {
		t.Fatal(err)
	}
	st, err := tasks.NewSQLStore(db, tasks.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if v, l, err := st.SchemaVersion(ctx); v != 0 || l != latest || err != nil {
		t.Errorf("SchemaVersion of a database never migrated: got %d, %d, %v; want 0, %d, nil", v, l, err, latest)
	}
	eng, err = tasks.NewEngine(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err == nil {
		eng.Stop(ctx)
		t.Error("Start on a database never migrated: got nil, want an error")
	}
}

// Migration 0020 rebuilds the list indexes in ascending order on a
// database that holds tasks: every listing they serve, paged through its
// cursors, is the same after it, and a task inserted after it comes first.
func TestMigration0020FromAt0018(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, db, p := openGoose(t)
	if _, err := p.UpTo(ctx, 18); err != nil {
		t.Fatalf("goose up to 18: %v", err)
	}
	st, err := tasks.NewSQLStore(db, tasks.SQLite) // not Open, which migrates
	if err != nil {
		t.Fatal(err)
	}
	// The store reads claim_token, which migration 0021 adds: lend it to
	// the tables at 18 for the inserts and listings, and take it back.
	if _, err := db.ExecContext(ctx, `ALTER TABLE taskwheel_tasks ADD COLUMN claim_token INTEGER`); err != nil {
		t.Fatal(err)
	}
	since := testkit.InsertListed(t, st, 4, 5)
	before := testkit.Listings(t, st, since)
	if _, err := db.ExecContext(ctx, `ALTER TABLE taskwheel_tasks DROP COLUMN claim_token`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("goose up: %v", err)
	}
	if v, latest, err := st.SchemaVersion(ctx); err != nil || v != latest || v < 20 {
		t.Fatalf("SchemaVersion after goose up: got %d, %d, %v; want the latest, at least 20", v, latest, err)
	}
	for _, index := range []string{"taskwheel_tasks_list", "taskwheel_tasks_app_list"} {
		var def string
		if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = ?`, index).Scan(&def); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(def, "DESC") {
			t.Errorf("index %s after 0020: %s, want it ascending", index, def)
		}
	}
	testkit.SameListings(t, testkit.Listings(t, st, since), before)
	testkit.NewestFirst(t, st)
}
