package sqlite_test

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/sqlite"
)

// walRestarts reads the checkpoint sequence number from the header of the
// WAL file at path: SQLite adds one each time the WAL restarts from its
// start. A missing or empty file reads as 0.
func walRestarts(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr [16]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0 // empty, or the header not written yet
	}
	return binary.BigEndian.Uint32(hdr[12:16])
}

// fillerWrites writes 64 KB rows to a table of db without a pause, keeping
// the last hundred, as a retention pass or a saturated engine writes, until
// the returned stop is called; stop reports the writes' error.
func fillerWrites(t *testing.T, db *sql.DB) (stop func()) {
	t.Helper()
	if _, err := db.Exec(`CREATE TABLE filler (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	done := make(chan error, 1)
	go func() { // writes until quit is closed; joined by stop
		blob := make([]byte, 64<<10)
		for {
			select {
			case <-quit:
				done <- nil
				return
			default:
			}
			if _, err := db.Exec(`INSERT INTO filler (b) VALUES (?)`, blob); err != nil {
				done <- err
				return
			}
			if _, err := db.Exec(`DELETE FROM filler WHERE rowid < (SELECT max(rowid) FROM filler) - 100`); err != nil {
				done <- err
				return
			}
		}
	}()
	return func() {
		close(quit)
		if err := <-done; err != nil {
			t.Errorf("writes: %v", err)
		}
	}
}

// TestStore_WALRestartsUnderSteadyWrites writes without a pause until the
// WAL is past 64 MB: the checkpointer must then make it restart from its
// start while the writes go on (twice, to see that it keeps doing so). A
// checkpoint beside the writer alone never completes before the next
// commit, and the WAL only grows (measured: 20 GB in 90 s of W4).
func TestStore_WALRestartsUnderSteadyWrites(t *testing.T) {
	t.Parallel()
	path := testdb.SQLitePath(t)
	s, err := sqlite.Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	stop := fillerWrites(t, s.DB())
	defer stop()
	first := walRestarts(t, path+"-wal")
	var biggest int64
	deadline := time.Now().Add(90 * time.Second)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		if walRestarts(t, path+"-wal") >= first+2 {
			return
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			biggest = max(biggest, fi.Size())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the WAL grew to %d MB under steady writes in 90 s and restarted %d times, want 2",
				biggest>>20, walRestarts(t, path+"-wal")-first)
		}
	}
}

// TestStore_WALTruncatedWhenIdle checks that a store that wrote a burst
// and then stopped writing gives the WAL's space back within seconds,
// though a restart under writes reuses the file rather than truncating it;
// and that a reader holding an old snapshot only delays it.
func TestStore_WALTruncatedWhenIdle(t *testing.T) {
	t.Parallel()
	path := testdb.SQLitePath(t)
	s, err := sqlite.Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if _, err := s.DB().Exec(`CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 64<<10)
	for i := range 64 { // 4 MB of WAL
		if _, err := s.DB().Exec(`INSERT INTO kv (k, v) VALUES (?, ?)`, i, blob); err != nil {
			t.Fatal(err)
		}
	}
	// A reader on a connection of its own, in a transaction that read
	// the database: its snapshot holds the WAL's frames.
	reader, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	rtx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 64 {
		t.Fatalf("count: %d, %v; want 64", n, err)
	}
	size := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Held for longer than the idle time: the WAL must stay.
	time.Sleep(7 * time.Second)
	if got := size(); got == 0 {
		t.Fatal("the WAL was truncated under a reader's snapshot")
	}
	rtx.Rollback()
	deadline := time.Now().Add(30 * time.Second)
	for size() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL is still %d bytes 30 s after the last reader ended, want 0", size())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing lost: the rows are in the database file.
	if err := s.DB().QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 64 {
		t.Fatalf("count after truncation: %d, %v; want 64", n, err)
	}
}
