package tasks

// Periodic tasks: a cron schedule in a time zone that enqueues a task at each
// of its run times ("slots"), once across every engine sharing the store.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"
)

// schedule gives the run times of a periodic task. parseSchedule returns
// one; any cron.Schedule of github.com/robfig/cron/v3 satisfies it.
type schedule interface {
	// Next returns the first run time after t, or the zero time if there is
	// none.
	Next(t time.Time) time.Time
}

// scheduleParser reads the specs that parseSchedule accepts.
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// maxSpecLength bounds a schedule's spec.
const maxSpecLength = 255

// parseSchedule returns the schedule that spec describes in the IANA time
// zone timeZone ("Europe/Berlin"; "" means UTC), as NewPeriodic.Spec
// documents it. An invalid spec or time zone gives a *ValidationError of
// field "spec" or "time_zone"; so does "Local" (it means different zones on
// different machines) and a spec that never matches, such as February 30.
func parseSchedule(spec, timeZone string) (schedule, error) {
	loc, err := loadZone(timeZone)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(spec)
	switch {
	case s == "":
		return nil, invalid("spec", "must not be empty")
	case len(spec) > maxSpecLength:
		return nil, invalid("spec", "longer than %d bytes", maxSpecLength)
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, invalid("spec", "must not set a time zone; use time_zone")
	}
	if every, ok := strings.CutPrefix(s, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(every))
		if err != nil {
			return nil, invalid("spec", "@every: %q is not a duration", strings.TrimSpace(every))
		}
		if d < time.Second || d%time.Second != 0 {
			return nil, invalid("spec", "@every: want a whole number of seconds, at least 1s; have %v", d)
		}
	}
	sched, err := scheduleParser.Parse(s)
	if err != nil {
		return nil, invalid("spec", "%q: %v", spec, err)
	}
	if ss, ok := sched.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	if sched.Next(time.Now()).IsZero() {
		return nil, invalid("spec", "%q never matches a date", spec)
	}
	return sched, nil
}

// loadZone returns the location named by an IANA time zone name; "" is UTC.
func loadZone(name string) (*time.Location, error) {
	if err := validateText("time_zone", name, MaxIDLength); err != nil {
		return nil, err
	}
	if name == "Local" {
		return nil, invalid("time_zone", `"Local" differs from machine to machine; name an IANA time zone such as "Europe/Berlin" or "UTC"`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, invalid("time_zone", "%q is not a known IANA time zone", name)
	}
	return loc, nil
}

// PeriodicStatus says whether a periodic task fires.
type PeriodicStatus string

// The statuses of a periodic task.
const (
	PeriodicActive PeriodicStatus = "active" // enqueues a task at each slot
	PeriodicPaused PeriodicStatus = "paused" // enqueues nothing; NextRunAt is nil
)

// MissedPolicy says what becomes of the slots of a periodic task that passed
// while no engine was running to fire them.
//
// A slot is missed when it is more than one poll interval (Config.PollInterval,
// at most 30 seconds) older than the moment the engine that finds it began
// reading periodic tasks: its Start, or the first read that succeeded after
// the store failed. So slots that pass while every engine is stopped, or
// while the store is unreachable, are missed; a slot that an engine reaching
// the store reaches late, because it is busy or slow, is not missed: its task
// runs late.
type MissedPolicy string

// The missed-slot policies.
const (
	// MissedRunOnce enqueues one task, due at once, for the latest missed
	// slot (its ScheduledRunTime is that slot) and none for the others, then
	// resumes the schedule. It is the default: work that was due is done,
	// once, however long the outage. The task's IdempotencyKey is that of
	// the first missed slot, so that an engine that finds that slot due
	// rather than missed (engines mark slots missed by when they started)
	// enqueues the same task, never a second one.
	MissedRunOnce MissedPolicy = "run_once"
	// MissedSkip enqueues no task for missed slots and resumes the schedule
	// at the first slot that is not missed.
	MissedSkip MissedPolicy = "skip"
)

// PeriodicTask is a schedule that enqueues a task of an app at each of its
// run times ("slots"): the task has the periodic task's AppID, EventType and
// Data, its ScheduledRunTime is the slot, and its IdempotencyKey is
// "periodic:<periodic task ID>:<slot in RFC 3339, UTC>", so each slot has one
// task however many engines share the store. (The one task of missed slots
// run once has the key of the first of them; see [MissedRunOnce].) The engines enqueue each task
// shortly before its slot (up to twice Config.PollInterval, at most a
// minute), so that it starts exactly on time.
//
// Its JSON form uses the field names of the task API (id, app_id, event_type,
// status, data, created_at, updated_at) plus spec, time_zone, missed,
// next_run_at, last_run_at and last_task_id.
//
// A PeriodicTask returned by the engine or a store is a copy; changing it
// changes nothing stored.
type PeriodicTask struct {
	ID    string `json:"id"`
	AppID string `json:"app_id"`
	// Spec and TimeZone are the schedule; see NewPeriodic.Spec. TimeZone is
	// an IANA time zone name, "UTC" unless the task was given another.
	Spec     string `json:"spec"`
	TimeZone string `json:"time_zone"`
	// EventType and Data make the tasks it enqueues. Data is kept byte for
	// byte.
	EventType string          `json:"event_type"`
	Data      json.RawMessage `json:"data"`
	Status    PeriodicStatus  `json:"status"`
	// Missed says what becomes of slots that passed while no engine ran.
	Missed MissedPolicy `json:"missed"`
	// NextRunAt is the next slot not yet enqueued; nil while paused.
	NextRunAt *time.Time `json:"next_run_at"`
	// LastRunAt is the slot of the latest task enqueued, and LastTaskID
	// that task's ID; nil before the first. LastRunAt may lie a little in
	// the future: tasks are enqueued ahead of their slot.
	LastRunAt  *time.Time `json:"last_run_at"`
	LastTaskID *string    `json:"last_task_id"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

func (p *PeriodicTask) app() string { return p.AppID }

func (p *PeriodicTask) clone() *PeriodicTask {
	c := *p
	c.Data = slices.Clone(p.Data)
	c.NextRunAt = cloneTime(p.NextRunAt)
	c.LastRunAt = cloneTime(p.LastRunAt)
	if p.LastTaskID != nil {
		c.LastTaskID = new(*p.LastTaskID)
	}
	return &c
}

// normalize keeps p's times as stores do: UTC, to the microsecond.
func (p *PeriodicTask) normalize() {
	for _, t := range []**time.Time{&p.NextRunAt, &p.LastRunAt} {
		if *t != nil {
			*t = new((*t).UTC().Truncate(time.Microsecond))
		}
	}
}

// NewPeriodic describes a periodic task to create.
type NewPeriodic struct {
	// AppID is the app of the tasks it enqueues. Required.
	AppID string
	// Spec is the schedule, in the time zone TimeZone. Required. It has
	// the syntax of github.com/robfig/cron/v3's standard parser: five
	// fields, minute, hour, day of month, month and day of week
	// ("30 9 * * MON-FRI": 9:30 on weekdays), with "*", lists ("1,15"),
	// ranges ("1-5"), steps ("*/10") and names of months and days; or a
	// descriptor: @yearly (@annually), @monthly, @weekly, @daily
	// (@midnight), @hourly, or @every followed by a duration of whole
	// seconds, at least one ("@every 90s", "@every 1h30m"). A sixth field
	// in front, seconds, is allowed ("*/5 * * * * *": every five seconds).
	// When both the day of month and the day of week are restricted, a day
	// matching either one matches, as in cron. robfig's extensions beyond
	// that ("L", "W", "#") are not supported, and the time zone is
	// TimeZone, not a TZ= or CRON_TZ= prefix in Spec. A spec that never
	// matches, such as February 30, is refused.
	//
	// Run times are computed on the wall clock of TimeZone, which follows its
	// daylight saving rules as robfig/cron does: a time that does not exist on a
	// day (2:30 on the day clocks spring forward from 2:00 to 3:00 in
	// America/New_York) has no run that day, and a time that happens twice (1:30
	// on the day clocks fall back from 2:00 to 1:00) has a run at each. @every
	// counts elapsed time from the previous run, whatever the zone.
	Spec string
	// TimeZone is the IANA time zone of Spec. Defaults to "UTC".
	TimeZone string
	// EventType is the tasks' event type, as NewTask.EventType. Required.
	EventType string
	// Data is the tasks' payload, I-JSON as NewTask.Data. Nil means JSON
	// null.
	Data json.RawMessage
	// Status defaults to PeriodicActive.
	Status PeriodicStatus
	// Missed defaults to MissedRunOnce.
	Missed MissedPolicy
}

// PeriodicUpdate changes a periodic task; nil fields stay as they are.
type PeriodicUpdate struct {
	Spec      *string
	TimeZone  *string
	EventType *string
	Data      json.RawMessage
	Status    *PeriodicStatus
	Missed    *MissedPolicy
}

// validatePeriodic checks p and returns its schedule.
func (e *Engine) validatePeriodic(p *PeriodicTask) (schedule, error) {
	if err := validateText("app_id", p.AppID, MaxIDLength); err != nil {
		return nil, err
	}
	if p.AppID == "" {
		return nil, invalid("app_id", "must not be empty")
	}
	sched, err := parseSchedule(p.Spec, p.TimeZone)
	if err != nil {
		return nil, err
	}
	if err := validateEventType(p.EventType); err != nil {
		return nil, err
	}
	if err := validateData(p.Data); err != nil {
		return nil, err
	}
	switch {
	case len(p.Data) > e.cfg.MaxDataBytes:
		return nil, invalid("data", "%d bytes, more than the limit of %d", len(p.Data), e.cfg.MaxDataBytes)
	case p.Status != PeriodicActive && p.Status != PeriodicPaused:
		return nil, invalid("status", "must be %q or %q", PeriodicActive, PeriodicPaused)
	case p.Missed != MissedRunOnce && p.Missed != MissedSkip:
		return nil, invalid("missed", "must be %q or %q", MissedRunOnce, MissedSkip)
	}
	return sched, nil
}

// reschedule sets p's NextRunAt to its first slot after the store's clock,
// or to nil while p is paused.
func (e *Engine) reschedule(ctx context.Context, p *PeriodicTask, sched schedule) error {
	if p.Status != PeriodicActive {
		p.NextRunAt = nil
		return nil
	}
	now, _, err := e.store.Upcoming(ctx, 0, 0) // the store's clock
	if err != nil {
		return err
	}
	next := sched.Next(now)
	if next.IsZero() {
		return invalid("spec", "%q has no run time after %v", p.Spec, now)
	}
	p.NextRunAt = new(next.UTC())
	return nil
}

// CreatePeriodic stores a new periodic task and returns it. Its first slot is
// the first after now. An invalid np gives a *ValidationError.
func (e *Engine) CreatePeriodic(ctx context.Context, np NewPeriodic) (*PeriodicTask, error) {
	p := &PeriodicTask{
		ID:        uuid.NewString(),
		AppID:     np.AppID,
		Spec:      np.Spec,
		TimeZone:  cmp.Or(np.TimeZone, "UTC"),
		EventType: np.EventType,
		Data:      np.Data,
		Status:    cmp.Or(np.Status, PeriodicActive),
		Missed:    cmp.Or(np.Missed, MissedRunOnce),
	}
	if p.Data == nil {
		p.Data = json.RawMessage("null")
	}
	sched, err := e.validatePeriodic(p)
	if err != nil {
		return nil, err
	}
	if err := e.reschedule(ctx, p, sched); err != nil {
		return nil, wrapf(err, "create periodic task")
	}
	stored, err := e.store.InsertPeriodic(ctx, p)
	if err != nil {
		return nil, wrapf(err, "create periodic task")
	}
	e.pokePeriodic()
	return stored, nil
}

// Periodic returns the periodic task with the given ID, or an error matching
// ErrNotFound.
func (e *Engine) Periodic(ctx context.Context, id string) (*PeriodicTask, error) {
	p, err := e.store.GetPeriodic(ctx, id)
	if err != nil {
		return nil, wrapf(err, "get periodic task %s", id)
	}
	return p, nil
}

// Periodics returns an app's periodic tasks, oldest first.
func (e *Engine) Periodics(ctx context.Context, appID string) ([]*PeriodicTask, error) {
	ps, err := e.store.ListPeriodics(ctx, appID)
	if err != nil {
		return nil, wrapf(err, "list periodic tasks of %s", appID)
	}
	return ps, nil
}

// UpdatePeriodic changes a periodic task and returns it. A change of its
// spec, time zone or status takes effect at its next slot: NextRunAt becomes
// the first slot after now of the new schedule (nil when paused), so a
// resumed task does not catch up on the slots that passed while it was
// paused. A task already enqueued for a coming slot (see [PeriodicTask]) is
// not changed; cancel it through LastTaskID if it must not run. An invalid
// change gives a *ValidationError and changes nothing. Concurrent changes of
// one periodic task all apply, in some order: a change that finds the task
// changed since it read it reads it again.
func (e *Engine) UpdatePeriodic(ctx context.Context, id string, u PeriodicUpdate) (*PeriodicTask, error) {
	var err error
	for range maxUpdateTries {
		var p *PeriodicTask
		p, err = e.updatePeriodic(ctx, id, u)
		if !errors.Is(err, ErrConflict) {
			if err != nil {
				break
			}
			e.pokePeriodic()
			return p, nil
		}
	}
	var verr *ValidationError
	if errors.As(err, &verr) {
		return nil, err
	}
	return nil, wrapf(err, "update periodic task %s", id)
}

// updatePeriodic makes one try of UpdatePeriodic: it reads the periodic
// task, applies u and stores it, if it did not change meanwhile.
func (e *Engine) updatePeriodic(ctx context.Context, id string, u PeriodicUpdate) (*PeriodicTask, error) {
	p, err := e.store.GetPeriodic(ctx, id)
	if err != nil {
		return nil, err
	}
	old := p.clone()
	if u.Spec != nil {
		p.Spec = *u.Spec
	}
	if u.TimeZone != nil {
		p.TimeZone = cmp.Or(*u.TimeZone, "UTC")
	}
	if u.EventType != nil {
		p.EventType = *u.EventType
	}
	if u.Data != nil {
		p.Data = u.Data
	}
	if u.Status != nil {
		p.Status = *u.Status
	}
	if u.Missed != nil {
		p.Missed = *u.Missed
	}
	sched, err := e.validatePeriodic(p)
	if err != nil {
		return nil, err
	}
	// Otherwise NextRunAt stays as read. Should an engine have enqueued
	// that slot meanwhile, storing it again makes the slot's task be
	// enqueued again: its idempotency key makes that the same task.
	if p.Spec != old.Spec || p.TimeZone != old.TimeZone || p.Status != old.Status {
		if err := e.reschedule(ctx, p, sched); err != nil {
			return nil, err
		}
	}
	return e.store.UpdatePeriodic(ctx, p)
}

// DeletePeriodic deletes a periodic task: it enqueues no more tasks. The
// tasks it enqueued stay, a task enqueued for a coming slot included.
func (e *Engine) DeletePeriodic(ctx context.Context, id string) error {
	if err := e.store.DeletePeriodic(ctx, id); err != nil {
		return wrapf(err, "delete periodic task %s", id)
	}
	return nil
}

// pokePeriodic has the running engine, if any, read its periodic tasks now.
func (e *Engine) pokePeriodic() {
	if r := e.current(); r != nil {
		select {
		case r.periodicWake <- struct{}{}:
		default:
		}
	}
}

// periodicKey is the idempotency key of the task of slot of periodic task id.
func periodicKey(id string, slot time.Time) string {
	return "periodic:" + id + ":" + slot.UTC().Format(time.RFC3339Nano)
}

// Limits of the periodic goroutine.
const (
	maxPeriodicInterval = 30 * time.Second // between reads, whatever Config.PollInterval
	periodicLimit       = 100              // periodic tasks a read returns
	maxSlotsPerRead     = 1000             // tasks one read enqueues for one periodic task
	maxSlotSteps        = 1000             // slots missedSlots steps through before it jumps
)

// periodicInterval is how often the engine reads its periodic tasks: every
// Config.PollInterval, at most maxPeriodicInterval. Each read enqueues the
// slots due within twice that.
func (e *Engine) periodicInterval() time.Duration {
	return min(e.cfg.PollInterval, maxPeriodicInterval)
}

// periodic is the periodic goroutine: it enqueues the tasks of the periodic
// tasks' slots, right after Start, every periodicInterval, and when this
// engine creates or changes a periodic task. It exits when Stop begins.
func (r *run) periodic() {
	defer close(r.periodicDone)
	iv := r.e.periodicInterval()
	timer := time.NewTimer(0)
	defer timer.Stop()
	f := firer{r: r, iv: iv, reported: make(map[string]time.Time)}
	for {
		select {
		case <-r.stopping:
			return
		case <-timer.C:
		case <-r.periodicWake:
		}
		wait := iv
		if f.read() {
			wait = 0 // there are more due than one read returns
		}
		timer.Reset(wait)
	}
}

// firer is the state of the periodic goroutine.
type firer struct {
	r  *run
	iv time.Duration
	// since is the store's time of the first read of the current run of
	// successful reads; zero after a failed read. Slots more than iv
	// before it are missed.
	since time.Time
	// reported holds, per periodic task, the slot whose failure was
	// logged, so that a failure repeating at each read is logged once.
	reported map[string]time.Time
}

// read enqueues the slots due soon and reports whether it should run again
// at once.
func (f *firer) read() (more bool) {
	r, e := f.r, f.r.e
	ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
	now, due, err := e.store.DuePeriodics(ctx, 2*f.iv, periodicLimit)
	cancel()
	if err != nil {
		f.since = time.Time{}
		if r.ctx.Err() == nil {
			e.obs.storeError("read periodic tasks")
			e.log.Error("tasks: read periodic tasks; retrying", "err", err, "retry_in", f.iv)
		}
		return false
	}
	if f.since.IsZero() {
		f.since = now
	}
	progress := false
	for _, p := range due {
		if p.NextRunAt == nil {
			continue // not due; a store returning it breaks its contract
		}
		select {
		case <-r.stopping:
			return false
		default:
		}
		if f.fire(p, now) {
			progress = true
		}
	}
	return progress && len(due) == periodicLimit
}

// fire enqueues the tasks of p's slots up to now plus twice the interval,
// advancing p past each, and reports whether it advanced p at all. It stops
// at the first failure, or when another engine advanced or changed p first.
func (f *firer) fire(p *PeriodicTask, now time.Time) (advanced bool) {
	r, e := f.r, f.r.e
	slot := *p.NextRunAt
	sched, err := parseSchedule(p.Spec, p.TimeZone)
	if err != nil {
		f.report(p, slot, "parse the schedule of periodic task", err)
		return false
	}
	missedBefore := f.since.Add(-f.iv)
	until := now.Add(2 * f.iv)
	for range maxSlotsPerRead {
		if slot.After(until) {
			break
		}
		select {
		case <-r.stopping:
			return advanced
		default:
		}
		// The task of the slot is due at runAt, the slot itself unless
		// it stands for missed slots; next is the slot after.
		runAt, next := slot, time.Time{}
		if slot.Before(missedBefore) {
			last, first := missedSlots(sched, slot, missedBefore)
			if first.IsZero() {
				f.report(p, slot, "compute the next slot of periodic task",
					fmt.Errorf("schedule %q in %s has no run time after %v", p.Spec, p.TimeZone, last))
				return advanced
			}
			if p.Missed == MissedSkip {
				e.log.Info("tasks: periodic task missed slots; skipping them",
					"periodic_id", p.ID, "first_missed", slot, "last_missed", last, "next_run_at", first)
				if !f.advance(p, slot, first, time.Time{}, "") {
					return advanced
				}
				advanced, slot = true, first
				continue
			}
			// One task for the missed slots from slot to last, due at
			// last and keyed by slot, then one move past them all: an
			// engine that finds slot due rather than missed, and
			// enqueues its task, enqueues that same task.
			e.log.Info("tasks: periodic task missed slots; running the latest once",
				"periodic_id", p.ID, "first_missed", slot, "last_missed", last, "next_run_at", first)
			runAt, next = last, first
		} else {
			next = sched.Next(slot)
		}
		if next.IsZero() || !next.After(slot) {
			f.report(p, slot, "compute the next slot of periodic task",
				fmt.Errorf("schedule %q in %s has no run time after %v", p.Spec, p.TimeZone, slot))
			return advanced
		}
		t, err := f.enqueue(p, slot, runAt)
		if err != nil {
			f.report(p, slot, "enqueue the task of periodic task", err)
			return advanced
		}
		if !f.advance(p, slot, next.UTC(), runAt, t.ID) {
			return advanced
		}
		advanced, slot = true, next.UTC()
	}
	return advanced
}

// enqueue stores the task of p's slot, due at runAt, or finds the one
// another engine stored, and puts it in this engine's wheel.
func (f *firer) enqueue(p *PeriodicTask, slot, runAt time.Time) (*Task, error) {
	r, e := f.r, f.r.e
	t, err := e.newTask(NewTask{
		AppID:          p.AppID,
		EventType:      p.EventType,
		Data:           p.Data,
		RunAt:          runAt,
		IdempotencyKey: periodicKey(p.ID, slot),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
	var stored *Task
	if e.enqMW {
		stored, err = e.enqueueOne(ctx, t, e.store.Insert)
	} else {
		stored, err = e.store.Insert(ctx, t)
	}
	cancel()
	switch {
	case errors.Is(err, ErrDuplicate) && stored != nil:
		// Another engine stored the slot's task first.
	case err != nil:
		return nil, err
	}
	if stored.NextAttemptAt != nil {
		r.hint(Due{ID: stored.ID, RunAt: *stored.NextAttemptAt})
	}
	return stored, nil
}

// advance moves p from slot from to slot to, recording taskID, if not "",
// as its latest task, due at runAt, and reports whether it did. It does not
// when another engine advanced or changed p first, or on an error, which it
// logs.
func (f *firer) advance(p *PeriodicTask, from, to, runAt time.Time, taskID string) bool {
	r, e := f.r, f.r.e
	ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
	ok, err := e.store.AdvancePeriodic(ctx, p.ID, from, to, runAt, taskID)
	cancel()
	if err != nil {
		f.report(p, from, "advance periodic task", err)
		return false
	}
	if ok {
		delete(f.reported, p.ID)
	}
	return ok
}

// report logs the failure of periodic task p at slot, unless it was logged
// for that slot already.
func (f *firer) report(p *PeriodicTask, slot time.Time, what string, err error) {
	if f.r.ctx.Err() != nil {
		return
	}
	if at, ok := f.reported[p.ID]; ok && at.Equal(slot) {
		return
	}
	f.reported[p.ID] = slot
	f.r.e.log.Error("tasks: "+what+"; retrying at each read", "periodic_id", p.ID, "slot", slot, "err", err)
}

// missedSlots returns, for a schedule and a slot s before x, the last slot
// before x and the first slot at or after x (zero if there is none).
func missedSlots(sched schedule, s, x time.Time) (last, first time.Time) {
	last = s
	for n := 1; ; n++ {
		first = sched.Next(last)
		if first.IsZero() || !first.Before(x) {
			return last, first
		}
		last = first
		if n%maxSlotSteps == 0 {
			last = lastSlotBefore(sched, last, x)
		}
	}
}

// lastSlotBefore returns the last slot of sched before x, given a slot s
// before x, without stepping through every slot in between when it can.
func lastSlotBefore(sched schedule, s, x time.Time) time.Time {
	if cd, ok := sched.(cron.ConstantDelaySchedule); ok {
		// Each slot is the previous one plus Delay.
		return s.Add((x.Sub(s) - 1) / cd.Delay * cd.Delay)
	}
	// The slots of a cron spec are times of the calendar, whatever s: find
	// one in a window before x, doubling the window until there is one.
	for back := time.Second; back > 0 && back < x.Sub(s); back *= 2 {
		t := sched.Next(x.Add(-back))
		if t.IsZero() || !t.Before(x) || !t.After(s) {
			continue
		}
		for {
			n := sched.Next(t)
			if n.IsZero() || !n.Before(x) {
				return t
			}
			t = n
		}
	}
	return s
}
