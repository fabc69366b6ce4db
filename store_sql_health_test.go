package tasks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// TestPostgresStore_HealthNoOpTakesNoLock checks that a RecordEndpointHealth
// that changes nothing (a success of a healthy endpoint within the
// resolution of the last one recorded, a failure of an endpoint already
// failing) does not wait for the endpoint's row while another transaction
// holds it: it locks no row, so deliveries to an endpoint never queue
// behind an update of it. One that changes the row does wait, which shows
// that the row is held.
func TestPostgresStore_HealthNoOpTakesNoLock(t *testing.T) {
	t.Parallel()
	s := openPostgres(t)
	ctx := t.Context()
	insert := func() *tasks.Endpoint {
		t.Helper()
		ep, err := s.InsertEndpoint(ctx, &tasks.Endpoint{ID: uuid.NewString(), AppID: "app_1", URL: "https://example.com/",
			EnabledEvents: []string{tasks.AllEvents}, Status: tasks.EndpointActive, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
	healthy, failing := insert(), insert()
	for _, c := range []struct {
		ep *tasks.Endpoint
		ok bool
	}{{healthy, true}, {failing, false}} {
		if got, err := s.RecordEndpointHealth(ctx, c.ep.ID, c.ok, false, time.Hour, time.Hour); got == nil || err != nil {
			t.Fatalf("RecordEndpointHealth(ok %v) of a new endpoint: got %v, %v; want the endpoint changed", c.ok, got, err)
		}
	}
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_endpoints WHERE id IN ($1, $2) FOR UPDATE`, healthy.ID, failing.ID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if got, err := s.RecordEndpointHealth(wctx, healthy.ID, true, false, time.Hour, time.Hour); got != nil || err != nil {
		t.Fatalf("RecordEndpointHealth(ok) of a healthy endpoint, within the resolution, whose row is held: got %v, %v; want nil, nil at once", got, err)
	}
	if got, err := s.RecordEndpointHealth(wctx, failing.ID, false, false, time.Hour, time.Hour); got != nil || err != nil {
		t.Fatalf("RecordEndpointHealth(failure) of a failing endpoint, within disableAfter, whose row is held: got %v, %v; want nil, nil at once", got, err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.RecordEndpointHealth(short, healthy.ID, false, false, time.Hour, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RecordEndpointHealth(failure) of an endpoint whose row is held: got error %v, want it to wait past its deadline", err)
	}
}
