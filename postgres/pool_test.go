package postgres_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

// Config.MaxIdleTime closes the connections a burst opened once they have
// been idle that long, so that a process holds what it used lately.
func TestOpen_MaxIdleTime(t *testing.T) {
	t.Parallel()
	_, dsn := testdb.PostgresDSN(t)
	s, err := postgres.Open(t.Context(), dsn, &postgres.Config{MaxConns: 4, MaxIdleTime: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	db := s.DB()
	var conns []*sql.Conn
	for range 3 { // a burst: three connections at once
		c, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	// database/sql's cleaner runs about once a second at the least.
	deadline := time.Now().Add(10 * time.Second)
	for db.Stats().OpenConnections > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %+v; want every idle connection closed", db.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := db.Stats().MaxIdleTimeClosed; got < 3 {
		t.Errorf("closed for idling: %d, want 3", got)
	}
}
