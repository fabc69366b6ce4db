package observe_test

import (
	"testing"
	"time"

	"github.com/taskwheel/tasks/observe"
)

func TestWindow(t *testing.T) {
	var w observe.Window
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// 100 attempts of a.x an hour and more ago, forgotten.
	for range 100 {
		w.Record(now.Add(-61*time.Minute), "a", "x", time.Hour, true)
	}
	// 98 on time (1–2 ms late), two late (20–25 ms), one failed.
	for i := range 100 {
		late := 1500 * time.Microsecond
		if i >= 98 {
			late = 20 * time.Millisecond
		}
		w.Record(now.Add(-time.Duration(i)*time.Second), "a", "x", late, i == 0)
	}
	w.Record(now, "a", "y", -1, false) // lateness not measured
	w.Record(now, "b", "x", time.Second, false)

	got := w.Stats(now, "a")
	if len(got) != 2 || got[0].EventType != "x" || got[1].EventType != "y" {
		t.Fatalf("got %+v, want x and y of app a", got)
	}
	x := got[0]
	if x.Attempts != 100 || x.Failed != 1 || x.FailureRate() != 0.01 {
		t.Errorf("x: got %d attempts, %d failed, rate %v; want 100, 1, 0.01", x.Attempts, x.Failed, x.FailureRate())
	}
	if x.LatenessP50 < time.Millisecond || x.LatenessP50 > 2500*time.Microsecond {
		t.Errorf("x: got p50 %v, want within the bucket (1 ms, 2.5 ms]", x.LatenessP50)
	}
	if x.LatenessP99 < 10*time.Millisecond || x.LatenessP99 > 25*time.Millisecond {
		t.Errorf("x: got p99 %v, want within the bucket (10 ms, 25 ms]", x.LatenessP99)
	}
	if y := got[1]; y.Attempts != 1 || y.LatenessP50 != 0 {
		t.Errorf("y: got %+v, want 1 attempt and no lateness", y)
	}
	if got := w.Stats(now.Add(2*time.Hour), "a"); len(got) != 0 {
		t.Errorf("two hours later: got %+v, want nothing", got)
	}
}

func TestWindow_RecordAllocatesNothing(t *testing.T) {
	var w observe.Window
	now := time.Now()
	w.Record(now, "a", "x", 0, false)
	if n := testing.AllocsPerRun(1000, func() { w.Record(now, "a", "x", time.Millisecond, false) }); n != 0 {
		t.Errorf("got %v allocations per Record, want 0", n)
	}
}
