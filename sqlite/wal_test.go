package sqlite_test

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"
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
	path, s := openAt(t)
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

// TestStore_WALTruncatedWhenIdle checks when the checkpointer truncates
// the WAL: not when it is small (a light load keeps it, and the next
// commit does not pay for growing it again); not after a burst while
// commits go on, though each finds the WAL checkpointed and restarts it
// with the same number of pages; not while a reader's snapshot holds its
// pages; and once none of these is left, within seconds.
func TestStore_WALTruncatedWhenIdle(t *testing.T) {
	t.Parallel()
	path, s := openAt(t)
	db := s.DB()
	if _, err := db.Exec(`CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 64<<10)
	rows := 0
	write := func(n int) {
		t.Helper()
		for range n {
			if _, err := db.Exec(`INSERT INTO kv (k, v) VALUES (?, ?)`, rows, blob); err != nil {
				t.Fatal(err)
			}
			rows++
		}
	}
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// keeps checks for d that the WAL is not truncated, every 20 ms.
	keeps := func(d time.Duration, why string) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if size() == 0 {
				t.Fatalf("the WAL was truncated %s", why)
			}
		}
	}

	write(64) // 4 MB, then idle
	keeps(7*time.Second, "when small")

	write(1600) // 100 MB
	if got := size(); got <= 64<<20 {
		t.Fatalf("after 100 MB of writes the WAL is %d MB, want more than 64", got>>20)
	}
	for range 5 { // one commit every 1.5 s
		keeps(1500*time.Millisecond, "while commits went on")
		write(1)
	}

	// A reader on a connection of its own, in a transaction that read
	// the database: its snapshot holds the WAL's pages.
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
	if err := rtx.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil || n != rows {
		t.Fatalf("count: %d, %v; want %d", n, err, rows)
	}
	keeps(7*time.Second, "under a reader's snapshot")
	rtx.Rollback()

	deadline := time.Now().Add(30 * time.Second)
	for size() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL is still %d MB 30 s after the last commit and the last reader, want 0", size()>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing lost: the rows are in the database file.
	if err := db.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil || n != rows {
		t.Fatalf("count after truncation: %d, %v; want %d", n, err, rows)
	}
}
