package tasks_test

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// BenchmarkStore_ListDeliveryAttempts measures a page of 25 of an app's
// deliveries (HostedHooks' webhook_attempts) on each store holding 20,000
// delivered tasks: of an app with 99% of them ("big"), and of one with 1%
// ("small"), whose page is read past the other app's deliveries, first
// and 150 deliveries deep.
func BenchmarkStore_ListDeliveryAttempts(b *testing.B) {
	const total, batch = 20000, 1000
	for _, s := range testStores {
		b.Run(s.name, func(b *testing.B) {
			st := s.open(b)
			ctx := b.Context()
			for n := 0; n < total; n += batch {
				ts := make([]*tasks.Task, batch)
				for i := range ts {
					app := "big"
					if (n+i)%100 == 0 {
						app = "small"
					}
					ts[i] = &tasks.Task{ID: uuid.NewString(), AppID: app, EventType: "x", Data: []byte(`{}`), MaxAttempts: 3}
				}
				if _, err := st.InsertMany(ctx, ts); err != nil {
					b.Fatal(err)
				}
				claimed, err := st.Claim(ctx, batch, time.Hour)
				if err != nil || len(claimed) != batch {
					b.Fatalf("Claim: %d tasks, %v; want %d", len(claimed), err, batch)
				}
				outs := make([]tasks.Outcome, batch)
				for i, t := range claimed {
					outs[i] = tasks.Outcome{ID: t.ID, Attempt: t.Attempts, State: tasks.StateCompleted, EndpointID: "ep_1",
						Attempts: []tasks.Attempt{{TaskID: t.ID, Number: t.Attempts, EndpointID: "ep_1", StartedAt: time.Now(), StatusCode: 204}}}
				}
				if _, err := st.Finish(ctx, outs); err != nil {
					b.Fatal(err)
				}
			}
			// Statistics, as autovacuum (PostgreSQL) or the application
			// (SQLite) would have gathered them by now.
			if db, ok := st.(interface{ DB() *sql.DB }); ok {
				if _, err := db.DB().ExecContext(ctx, "ANALYZE"); err != nil {
					b.Fatal(err)
				}
			}
			for _, tc := range []struct {
				app    string
				offset int
			}{{"big", 0}, {"small", 0}, {"small", 150}} {
				b.Run(fmt.Sprintf("%s/offset=%d", tc.app, tc.offset), func(b *testing.B) {
					for b.Loop() {
						as, err := st.ListDeliveryAttempts(ctx, tc.app, tc.offset, 25)
						if err != nil || len(as) != 25 {
							b.Fatalf("ListDeliveryAttempts: %d attempts, %v; want 25", len(as), err)
						}
					}
				})
			}
		})
	}
}
