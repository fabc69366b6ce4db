// Package observe holds what the engine's instrumentation shares with its
// readers in the process: the bucket bounds of its lateness histogram, and
// [Window], the last hour of attempts by event type that the dashboard
// shows (lateness p50 and p99, failure rate).
//
// The engine records into its Window the same measurements it records into
// its OpenTelemetry instruments (see package tasks, "Observability"), into
// buckets with the same bounds, whether or not OpenTelemetry is set up: a
// Window costs no allocation per attempt. It sees the attempts of its own
// engine only; the metrics of several processes are summed by whatever
// collects them.
package observe

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// LatenessBounds are the upper bounds, in seconds, of the buckets of the
// lateness histogram (tasks.lateness: when an attempt started less when
// it was due), in the OpenTelemetry instrument and in a Window alike.
// Nothing may change it.
var LatenessBounds = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
}

// DurationBounds are the upper bounds, in seconds, of the buckets of the
// duration histograms (messaging.process.duration and
// http.client.request.duration). Nothing may change it.
var DurationBounds = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 300,
}

// WindowLength is how far back a Window remembers: an hour, in minutes.
const WindowLength = time.Hour

// maxEventTypes bounds the event types, of all apps, that a Window keeps;
// the attempts of others are counted under OtherEventTypes.
const maxEventTypes = 1000

// OtherEventTypes is the EventType under which a Window counts the
// attempts of an app's event types past the first thousand it saw, of all
// apps.
const OtherEventTypes = "(other)"

const minutes = int(WindowLength / time.Minute)

// minute holds the attempts of one event type that ended in one minute.
type minute struct {
	at       int64 // Unix minute, 0 when unused
	attempts int64
	failed   int64
	lateness [19]int64 // by LatenessBounds, then +Inf; counts attempts that measured it
}

// series is the last hour of one event type, a ring of minutes.
type series struct {
	ring [60]minute
}

// Window holds the attempts of the last hour by event type, a minute at a
// time. It is safe for concurrent use; its zero value is an empty Window.
type Window struct {
	mu     sync.Mutex
	events map[eventKey]*series
}

// eventKey names the series of one event type of one app.
type eventKey struct{ app, eventType string }

// Record counts an attempt of eventType, of the app appID, that ended at
// now; failed reports
// whether it failed. A lateness of 0 or more is counted in the lateness
// histogram; a negative one (not measured) is not. Record does not
// allocate, except for the first attempt of an event type.
func (w *Window) Record(now time.Time, appID, eventType string, lateness time.Duration, failed bool) {
	at := now.Unix() / 60
	b := latenessBucket(lateness)
	k := eventKey{appID, eventType}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.events[k]
	if s == nil {
		if w.events == nil {
			w.events = make(map[eventKey]*series)
		}
		if len(w.events) >= maxEventTypes {
			k.eventType = OtherEventTypes
			s = w.events[k]
		}
		if s == nil {
			s = new(series)
			w.events[k] = s
		}
	}
	m := &s.ring[at%int64(minutes)]
	if m.at != at {
		*m = minute{at: at}
	}
	m.attempts++
	if failed {
		m.failed++
	}
	if b >= 0 {
		m.lateness[b]++
	}
}

// latenessBucket returns the bucket of LatenessBounds that d falls in, or
// -1 for a negative d.
func latenessBucket(d time.Duration) int {
	if d < 0 {
		return -1
	}
	return sort.SearchFloat64s(LatenessBounds, d.Seconds())
}

// EventStats sums the attempts of one event type over the last hour.
type EventStats struct {
	EventType string
	Attempts  int64 // attempts that ended
	Failed    int64 // of which failed (to be retried, or for good)
	// LatenessP50 and LatenessP99 estimate the median and 99th percentile
	// of lateness, interpolated within the histogram's buckets; 0 when
	// none was measured. Past the last bound, the estimate is that bound.
	LatenessP50, LatenessP99 time.Duration
}

// FailureRate returns Failed / Attempts, or 0 when there were none.
func (s EventStats) FailureRate() float64 {
	if s.Attempts == 0 {
		return 0
	}
	return float64(s.Failed) / float64(s.Attempts)
}

// Stats returns the attempts of the app appID that ended in the hour
// before now, by event type, in order of event type.
func (w *Window) Stats(now time.Time, appID string) []EventStats {
	at := now.Unix() / 60
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []EventStats
	for k, s := range w.events {
		if k.app != appID {
			continue
		}
		st := EventStats{EventType: k.eventType}
		var lat [19]int64
		for i := range s.ring {
			m := &s.ring[i]
			if m.at == 0 || m.at <= at-int64(minutes) || m.at > at {
				continue
			}
			st.Attempts += m.attempts
			st.Failed += m.failed
			for j, n := range m.lateness {
				lat[j] += n
			}
		}
		if st.Attempts == 0 {
			continue
		}
		st.LatenessP50 = quantile(&lat, 0.50)
		st.LatenessP99 = quantile(&lat, 0.99)
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b EventStats) int {
		switch {
		case a.EventType < b.EventType:
			return -1
		case a.EventType > b.EventType:
			return 1
		}
		return 0
	})
	return out
}

// quantile estimates the q quantile of the histogram counts, as
// Prometheus's histogram_quantile does: linearly within the bucket it
// falls in, from 0 for the first bucket, and the last bound for the last.
func quantile(counts *[19]int64, q float64) time.Duration {
	var total int64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen int64
	for i, n := range counts {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		if i == len(LatenessBounds) {
			return seconds(LatenessBounds[i-1])
		}
		lo := 0.0
		if i > 0 {
			lo = LatenessBounds[i-1]
		}
		hi := LatenessBounds[i]
		return seconds(lo + (hi-lo)*(rank-float64(seen))/float64(n))
	}
	return seconds(LatenessBounds[len(LatenessBounds)-1])
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
