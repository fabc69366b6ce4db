package tasks_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
)

// A PostgreSQL connection that ends after the server committed an insert of
// tasks, before its answer reached the store: the store's retry finds the
// tasks it stored on its first try and returns them, as if the answer had
// arrived, rather than an error about an ID the caller never chose (and
// that the HTTP API would answer with a 422 for a task that will run), or
// an error although the tasks were stored.
func TestPostgresStore_InsertCommittedAnswerLost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		key  string // the tasks' idempotency key prefix, "" for none
		many bool
		lose string // the tag of the command whose answer is lost; "INSERT " if ""
	}{
		{name: "Insert"},
		{name: "Insert with a key", key: "k"},
		{name: "InsertMany", many: true, lose: "SELECT "},                    // one statement that counts what it inserted, without a transaction
		{name: "InsertMany with keys", key: "k", many: true, lose: "COMMIT"}, // in a transaction
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, s := lossyPostgres(t)
			ts := make([]*tasks.Task, 3)
			for i := range ts {
				ts[i] = &tasks.Task{ID: uuid.NewString(), AppID: "app_1", EventType: "x",
					Data: json.RawMessage(`{"n": ` + strconv.Itoa(i) + `}`), MaxAttempts: 3}
				if tc.key != "" {
					ts[i].IdempotencyKey = tc.key + strconv.Itoa(i)
				}
			}
			if !tc.many {
				ts = ts[:1]
			}
			p.loseAnswerTo(cmp.Or(tc.lose, "INSERT "))
			var got []*tasks.Task
			var err error
			if tc.many {
				got, err = s.InsertMany(t.Context(), ts)
			} else {
				var one *tasks.Task
				one, err = s.Insert(t.Context(), ts[0])
				got = []*tasks.Task{one}
			}
			select {
			case <-p.lost:
			default:
				t.Fatal("no answer to an INSERT was lost")
			}
			if err != nil {
				t.Fatalf("insert whose answer was lost: %v", err)
			}
			for i, task := range got {
				if task == nil || task.ID != ts[i].ID || string(task.Data) != string(ts[i].Data) {
					t.Errorf("task %d: got %+v, want task %s", i, task, ts[i].ID)
				}
			}
			counts, err := s.CountTasks(t.Context(), "app_1", 1<<30)
			if err != nil || counts[tasks.StateScheduled] != len(ts) {
				t.Errorf("CountTasks: got %v, %v; want %d scheduled", counts, err, len(ts))
			}
		})
	}
}

// lossyPostgres returns a store on a new PostgreSQL schema whose
// connections go through a lossyProxy.
func lossyPostgres(t *testing.T) (*lossyProxy, *tasks.SQLStore) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(os.Getenv(testdb.PostgresURLEnv))
	if err != nil {
		t.Fatal(err)
	}
	p := newLossyProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	host, port, _ := net.SplitHostPort(p.ln.Addr().String())
	db, _ := testdb.PostgresWith(t, map[string]string{"host": host, "port": port})
	s, err := tasks.NewSQLStore(db, tasks.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return p, s
}

// lossyProxy forwards PostgreSQL connections to a server and, once asked
// to, ends the connection that gets the answer to a given command once the
// server has committed it (it is ready for the next query outside any
// transaction), without passing the answer on.
type lossyProxy struct {
	ln       net.Listener
	upstream string
	lost     chan struct{} // closed once an answer was lost

	mu  sync.Mutex
	tag string // the command tag whose answer to lose; "" for none
}

func newLossyProxy(t *testing.T, upstream string) *lossyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, upstream: upstream, lost: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return p
}

// loseAnswerTo asks p to lose the answer to the next command whose tag
// starts with tag.
func (p *lossyProxy) loseAnswerTo(tag string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tag = tag
}

// takeTag reports whether batch, the server's messages up to and including
// a ReadyForQuery outside a transaction, answers the command p is to lose
// the answer to, and if so disarms p.
func (p *lossyProxy) takeTag(batch []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tag == "" || batch[len(batch)-1] != 'I' {
		return false
	}
	for msg := batch; len(msg) >= 5; {
		n := 1 + int(binary.BigEndian.Uint32(msg[1:5]))
		if msg[0] == 'C' && bytes.HasPrefix(msg[5:n], []byte(p.tag)) {
			p.tag = ""
			close(p.lost)
			return true
		}
		msg = msg[n:]
	}
	return false
}

// serve forwards client's messages to the server as they come, and the
// server's in batches ending with a ReadyForQuery or an authentication
// request, so that an answer is passed on whole or not at all.
func (p *lossyProxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	var upstream sync.WaitGroup
	upstream.Go(func() { io.Copy(server, client) })
	defer upstream.Wait()
	defer server.Close()
	defer client.Close()
	var batch []byte
	header := make([]byte, 5)
	for {
		if _, err := io.ReadFull(server, header); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(header[1:])-4)
		if _, err := io.ReadFull(server, body); err != nil {
			return
		}
		batch = append(append(batch, header...), body...)
		if header[0] != 'Z' && header[0] != 'R' {
			continue
		}
		if header[0] == 'Z' && p.takeTag(batch) {
			return // the server committed; its answer is lost
		}
		if _, err := client.Write(batch); err != nil {
			return
		}
		batch = batch[:0]
	}
}
