package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pressly/goose/v3"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/sqlite"
)

// An application that applies its schema changes with goose applies the
// library's tables with it too, keeping their history in a table of their
// own; the library's store then finds them up to date.
func Example_goose() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "app.db")+"?_txlock=immediate&_busy_timeout=10000")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	p, err := goose.NewProvider(goose.DialectSQLite3, db, sqlite.Migrations,
		goose.WithTableName("taskwheel_goose_db_version"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		log.Fatal(err)
	}

	store, err := tasks.NewSQLStore(db, tasks.SQLite)
	if err != nil {
		log.Fatal(err)
	}
	version, latest, err := store.SchemaVersion(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("up to date:", version == latest)
	// Output: up to date: true
}
