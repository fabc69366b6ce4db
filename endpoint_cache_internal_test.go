package tasks

import (
	"fmt"
	"testing"
	"time"
)

func TestEndpointCache(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	eps := []*Endpoint{{ID: "e1", AppID: "a"}}
	t.Run("holds an app's endpoints until they expire", func(t *testing.T) {
		t.Parallel()
		var c endpointCache
		if _, _, ok := c.get("a", t0); ok {
			t.Fatal("an empty cache has app a")
		}
		_, gen, _ := c.get("a", t0)
		c.put("a", eps, gen, t0)
		for _, tt := range []struct {
			at   time.Time
			want bool
		}{
			{t0, true},
			{t0.Add(endpointCacheTTL - 1), true},
			{t0.Add(endpointCacheTTL), false},
		} {
			if got, _, ok := c.get("a", tt.at); ok != tt.want || ok && got[0] != eps[0] {
				t.Errorf("get at t0+%v: got %v, %v; want found %v", tt.at.Sub(t0), got, ok, tt.want)
			}
		}
		if _, _, ok := c.get("b", t0); ok {
			t.Error("app b found, want only a")
		}
	})
	t.Run("invalidate empties it", func(t *testing.T) {
		t.Parallel()
		var c endpointCache
		_, gen, _ := c.get("a", t0)
		c.put("a", eps, gen, t0)
		c.invalidate()
		if _, _, ok := c.get("a", t0); ok {
			t.Error("app a found after invalidate")
		}
	})
	t.Run("a read begun before an invalidation is not kept", func(t *testing.T) {
		t.Parallel()
		var c endpointCache
		_, gen, _ := c.get("a", t0)
		c.invalidate() // an endpoint written while the store was read
		c.put("a", eps, gen, t0)
		if _, _, ok := c.get("a", t0); ok {
			t.Error("app a found, cached from a read that may have missed a write")
		}
		_, gen, _ = c.get("a", t0)
		c.put("a", eps, gen, t0)
		if _, _, ok := c.get("a", t0); !ok {
			t.Error("app a not found, cached from a read after the invalidation")
		}
	})
	t.Run("holds a bounded number of apps", func(t *testing.T) {
		t.Parallel()
		var c endpointCache
		for i := range maxCachedApps {
			c.put(fmt.Sprint("app", i), eps, 0, t0)
		}
		c.put("late", eps, 0, t0)
		if _, _, ok := c.get("late", t0); ok || len(c.apps) != maxCachedApps {
			t.Errorf("full: a new app cached %v, %d apps; want false, %d", ok, len(c.apps), maxCachedApps)
		}
		c.put("app0", eps, 0, t0.Add(time.Millisecond)) // refreshing one held is fine
		later := t0.Add(endpointCacheTTL)
		c.put("late", eps, 0, later)
		if _, _, ok := c.get("late", later); !ok || len(c.apps) != 2 {
			t.Errorf("full of expired apps: a new app cached %v, %d apps; want true, 2 (it and app0)", ok, len(c.apps))
		}
	})
}
