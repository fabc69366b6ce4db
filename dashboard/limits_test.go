package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/taskwheel/tasks"
)

// putMeanwhile is a store on which a change of a limit through the HTTP
// API (a PUT: a SetLimit of the whole limit) lands in the middle of the
// dashboard's pause or resume, once armed: after any read of the limit the
// dashboard makes, and before its write.
type putMeanwhile struct {
	tasks.Store
	armed atomic.Bool
	put   tasks.Limit
}

func (s *putMeanwhile) land(ctx context.Context) {
	if s.armed.CompareAndSwap(true, false) {
		put := s.put
		if _, err := s.Store.SetLimit(ctx, &put); err != nil {
			panic(err)
		}
	}
}

func (s *putMeanwhile) GetLimit(ctx context.Context, appID, key string) (*tasks.Limit, error) {
	l, err := s.Store.GetLimit(ctx, appID, key)
	s.land(ctx)
	return l, err
}

func (s *putMeanwhile) SetLimit(ctx context.Context, l *tasks.Limit) (*tasks.Limit, error) {
	s.land(ctx)
	return s.Store.SetLimit(ctx, l)
}

func (s *putMeanwhile) PauseLimit(ctx context.Context, appID, key string, paused bool) (*tasks.Limit, error) {
	s.land(ctx)
	return s.Store.PauseLimit(ctx, appID, key, paused)
}

// TestUI_LimitsPauseKeepsAPut checks that the dashboard's pause and resume
// change only whether the key is paused: a PUT of the limit that lands
// while the dashboard pauses it keeps its rate and concurrency, and the
// pause holds.
func TestUI_LimitsPauseKeepsAPut(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		s := &putMeanwhile{Store: newStore(t)}
		d := newDash(t, s, dashOpts{})
		ctx := context.Background()
		if _, err := d.e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "partner.api", Rate: 20, Concurrency: 3}); err != nil {
			t.Fatal(err)
		}
		d.login(keyApp1)
		const path = "/apps/app_1/limits"
		for _, step := range []struct {
			action string
			put    tasks.Limit
			paused bool
		}{
			{"pause", tasks.Limit{AppID: "app_1", Key: "partner.api", Rate: 7, Burst: 7, Concurrency: 5}, true},
			{"resume", tasks.Limit{AppID: "app_1", Key: "partner.api", Rate: 9, Burst: 9, Concurrency: 2, Paused: true}, false},
		} {
			s.put = step.put
			s.armed.Store(true)
			d.wantStatus("POST "+step.action, d.act(path, path+"/"+step.action, url.Values{"key": {"partner.api"}}), http.StatusSeeOther)
			if s.armed.Load() {
				t.Fatalf("%s: the PUT did not land: the dashboard neither read nor wrote the limit", step.action)
			}
			l, err := d.e.Limit(ctx, "app_1", "partner.api")
			if err != nil {
				t.Fatal(err)
			}
			if l.Rate != step.put.Rate || l.Burst != step.put.Burst || l.Concurrency != step.put.Concurrency || l.Paused != step.paused {
				t.Errorf("after a PUT of rate %g, burst %d, concurrency %d during %s: got rate %g, burst %d, concurrency %d, paused %t; want the PUT's limits, paused %t",
					step.put.Rate, step.put.Burst, step.put.Concurrency, step.action, l.Rate, l.Burst, l.Concurrency, l.Paused, step.paused)
			}
		}
	})
}
