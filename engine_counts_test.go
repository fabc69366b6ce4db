package tasks_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestEngine_Counts checks the engine's views of its store that the
// dashboard shows: task counts, the histogram of ended tasks, attempt
// counts and session revocations.
func TestEngine_Counts(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := context.Background()
		e := newEngine(t, newStore(t), nil)
		later := time.Now().Add(time.Hour)
		a := enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: later})
		enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: later})
		enqueue(t, e, tasks.NewTask{AppID: "app_2", EventType: "x", RunAt: later})
		since := time.Now().Add(-time.Minute)
		if _, err := e.Cancel(ctx, a.ID); err != nil {
			t.Fatal(err)
		}

		counts, err := e.CountTasks(ctx, "app_1", 1<<30)
		if err != nil || len(counts) != 2 || counts[tasks.StateScheduled] != 1 || counts[tasks.StateCanceled] != 1 {
			t.Errorf("CountTasks(app_1) = %v, %v; want 1 scheduled and 1 canceled", counts, err)
		}
		var ve *tasks.ValidationError
		if _, err := e.CountTasks(ctx, "app_1", 0); !errors.As(err, &ve) || ve.Field != "limit" {
			t.Errorf("CountTasks with limit 0: got %v, want a *ValidationError of field limit", err)
		}
		bs, err := e.TaskHistogram(ctx, "app_1", since, time.Hour)
		if err != nil || len(bs) != 1 || bs[0].Canceled != 1 || bs[0].Completed+bs[0].Failed != 0 {
			t.Errorf("TaskHistogram(app_1) = %+v, %v; want one bucket of 1 canceled", bs, err)
		}
		if _, err := e.TaskHistogram(ctx, "app_1", since, 0); !errors.As(err, &ve) {
			t.Errorf("TaskHistogram with a zero bucket: got %v, want a *ValidationError", err)
		}
		if total, failed, err := e.CountAttempts(ctx, "no-such-endpoint", since); total != 0 || failed != 0 || err != nil {
			t.Errorf("CountAttempts of an endpoint without attempts = %d, %d, %v; want 0, 0, nil", total, failed, err)
		}

		const session = "c2Vzc2lvbi1pZC0wMTIzNA"
		if revoked, err := e.SessionRevoked(ctx, session); revoked || err != nil {
			t.Errorf("SessionRevoked before RevokeSession = %v, %v; want false, nil", revoked, err)
		}
		if err := e.RevokeSession(ctx, session, later); err != nil {
			t.Fatal(err)
		}
		if revoked, err := e.SessionRevoked(ctx, session); !revoked || err != nil {
			t.Errorf("SessionRevoked after RevokeSession = %v, %v; want true, nil", revoked, err)
		}
	})
}

// TestEngine_ListRefusesForgedCursor checks that List refuses a cursor
// that decodes but holds no valid task ID, as no page hands one out.
func TestEngine_ListRefusesForgedCursor(t *testing.T) {
	t.Parallel()
	e := newEngine(t, tasks.NewMemoryStore(), nil)
	forged := base64.RawURLEncoding.EncodeToString(append(binary.BigEndian.AppendUint64(nil, 1), "<script>"...))
	_, _, err := e.List(context.Background(), tasks.ListParams{AppID: "app_1", Cursor: forged})
	var ve *tasks.ValidationError
	if !errors.As(err, &ve) || ve.Field != "cursor" {
		t.Errorf("List with a cursor of ID %q: got %v, want a *ValidationError of field cursor", "<script>", err)
	}
}
