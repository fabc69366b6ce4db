package tasktest

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// The methods a store may answer with tasks.ErrNotSupported (InsertTx,
// Listen), and Durable. A store that supports InsertTx keeps a database/sql
// database; the suite reaches it through a DB() *sql.DB method, as
// tasks.SQLStore has, and otherwise expects ErrNotSupported.

func (su suite) testOptional(t *testing.T) {
	su.run(t, "DurableIsStable", func(h *harness) {
		first := h.s.Durable()
		h.insert()
		if got := h.s.Durable(); got != first {
			h.t.Errorf("Durable: got %v, then %v; want the same answer on every call", first, got)
		}
	})

	su.run(t, "InsertTxCommitsOrIsNotSupported", func(h *harness) {
		db, ok := h.s.(interface{ DB() *sql.DB })
		if !ok {
			in := h.newTask()
			got, err := h.s.InsertTx(h.ctx, nil, in)
			if !errors.Is(err, tasks.ErrNotSupported) || got != nil {
				h.t.Fatalf("InsertTx on a store without DB(): got (%v, %v), want (nil, ErrNotSupported)", got, err)
			}
			if _, err := h.s.Get(h.ctx, in.ID); !errors.Is(err, tasks.ErrNotFound) {
				h.t.Errorf("Get after an unsupported InsertTx: got %v, want ErrNotFound", err)
			}
			return
		}
		for _, commit := range []bool{true, false} {
			tx, err := db.DB().BeginTx(h.ctx, nil)
			if err != nil {
				h.t.Fatal(err)
			}
			in := h.newTask()
			got, err := h.s.InsertTx(h.ctx, tx, in)
			if err != nil {
				tx.Rollback()
				h.t.Fatalf("InsertTx: got error %v, want nil", err)
			}
			h.check(got)
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				h.t.Fatal(err)
			}
			_, err = h.s.Get(h.ctx, in.ID)
			switch {
			case commit && err != nil:
				h.t.Errorf("Get after InsertTx and Commit: got %v, want the task", err)
			case !commit && !errors.Is(err, tasks.ErrNotFound):
				h.t.Errorf("Get after InsertTx and Rollback: got %v, want ErrNotFound", err)
			}
		}
	})

	su.run(t, "ListenNotifiesOrIsNotSupported", func(h *harness) {
		listening := make(chan struct{}, 1)
		notified := make(chan tasks.Due, 16)
		done := make(chan error, 1)
		go func() {
			done <- h.s.Listen(h.ctx, func() { listening <- struct{}{} }, func(d tasks.Due) { notified <- d })
		}()
		select {
		case err := <-done:
			if !errors.Is(err, tasks.ErrNotSupported) {
				h.t.Fatalf("Listen returned %v before listening, want ErrNotSupported (or to listen)", err)
			}
			return
		case <-listening:
		case <-time.After(10 * time.Second):
			h.t.Fatal("Listen neither listened nor returned within 10s")
		}
		in := h.insert()
		for {
			select {
			case d := <-notified:
				if d.ID == in.ID {
					return
				}
			case err := <-done:
				h.t.Fatalf("Listen returned %v before notifying task %s", err, in.ID)
			case <-time.After(10 * time.Second):
				h.t.Fatalf("no notification of task %s within 10s of its Insert", in.ID)
			}
		}
	})
}
