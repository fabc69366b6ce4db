package tasks

import (
	"context"
	"math"
	"time"
)

// Limit is the flow control of one flow key of an app: how fast and how
// many of the app's tasks with that key may start. A task's flow key is its
// NewTask.FlowKey, or its event type when it has none. Limits live in the
// store, so that every engine sharing it obeys them, and take effect at the
// next claim; on PostgreSQL engines hear of a change at once.
//
// A task whose key has no capacity is not started: it stays scheduled (or
// retrying), holds no worker, uses no attempt, and says why in its
// WaitReason, until its key has capacity again.
//
// A Limit is a value; changing one changes nothing stored.
type Limit struct {
	// AppID is the app whose tasks the limit applies to.
	AppID string `json:"app_id"`
	// Key is the flow key: 1 to MaxIDLength bytes of UTF-8 without
	// control characters.
	Key string `json:"key"`
	// Rate is how many tasks of the key may start per second, across
	// every engine, as a token bucket of Burst tokens. 0 means no limit.
	Rate float64 `json:"rate"`
	// Burst is how many tasks may start at once after the key was idle.
	// It needs a Rate. Defaults to Rate rounded up, at least 1.
	Burst int `json:"burst"`
	// Concurrency is how many tasks of the key may run at once, across
	// every engine. 0 means no limit.
	Concurrency int `json:"concurrency"`
	// Paused reports whether the key starts nothing new; its running
	// tasks finish.
	Paused bool `json:"paused"`
	// UpdatedAt is when the limit was last set.
	UpdatedAt time.Time `json:"updated_at"`
	// Running and Waiting count the key's tasks that are running and
	// waiting for its capacity, when the limit was read; setting a limit
	// ignores them.
	Running int `json:"running"`
	Waiting int `json:"waiting"`
}

// maxRate bounds Limit.Rate: a million starts per second is no limit.
const maxRate = 1e6

// normalize validates l, as a *ValidationError naming the field, and
// applies defaults.
func (l *Limit) normalize() error {
	if err := validateText("app_id", l.AppID, MaxIDLength); err != nil {
		return err
	}
	if l.AppID == "" {
		return invalid("app_id", "must not be empty")
	}
	if err := validateFlowKey("key", l.Key); err != nil {
		return err
	}
	switch {
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
		return invalid("rate", "must be a number")
	case l.Rate < 0:
		return invalid("rate", "must not be negative")
	case l.Rate > maxRate:
		return invalid("rate", "more than %g per second", float64(maxRate))
	case l.Burst < 0:
		return invalid("burst", "must not be negative")
	case l.Burst > 0 && l.Rate == 0:
		return invalid("burst", "needs a rate")
	case l.Burst > math.MaxInt32:
		return invalid("burst", "more than %d", math.MaxInt32)
	case l.Concurrency < 0:
		return invalid("concurrency", "must not be negative")
	case l.Concurrency > math.MaxInt32:
		return invalid("concurrency", "more than %d", math.MaxInt32)
	}
	if l.Rate > 0 && l.Burst == 0 {
		l.Burst = max(1, int(math.Ceil(l.Rate)))
	}
	l.Running, l.Waiting = 0, 0
	return nil
}

// waitReason returns why the tasks that wait for a key wait once its limit
// is set to l, or "" when l holds none of them back (it limits nothing),
// so that a change of a limit does not leave them showing a reason it
// ended, such as a pause after a resume. Of a concurrency and a rate, the
// concurrency is named.
func (l *Limit) waitReason() string {
	switch {
	case l.Paused:
		return waitPaused
	case l.Concurrency > 0:
		return waitConcurrency
	case l.Rate > 0:
		return waitRate
	}
	return ""
}

// validateFlowKey checks a flow key given as field.
func validateFlowKey(field, key string) error {
	if err := validateText(field, key, MaxIDLength); err != nil {
		return err
	}
	if key == "" {
		return invalid(field, "must not be empty")
	}
	return nil
}

// flowKey returns the flow key of a task of event type eventType whose
// own key is key.
func flowKey(key, eventType string) string {
	if key == "" {
		return eventType
	}
	return key
}

// The reasons a task waits, in Task.WaitReason.
const (
	waitPaused      = "paused: its flow key is paused"
	waitConcurrency = "concurrency: its flow key's concurrency limit is reached"
	waitRate        = "rate: its flow key's rate limit is reached"
)

// flowState is a limit as a claim sees it: the limit, its token bucket and
// its key's running tasks.
type flowState struct {
	Limit
	tokens   float64   // in the bucket at tokensAt
	tokensAt time.Time // when tokens was reckoned
	waiting  bool      // SQL stores: tasks may wait for the key
}

// refill brings the bucket of a rate limit to now.
func (f *flowState) refill(now time.Time) {
	if f.Rate <= 0 {
		return
	}
	// now may be before tokensAt: PostgreSQL's now() is when the claim's
	// transaction began, maybe before another claim's, which took the
	// limit first. The bucket's time never goes back, or the next claim
	// would count that interval's tokens twice.
	if dt := now.Sub(f.tokensAt).Seconds(); dt > 0 {
		f.tokens = min(float64(f.Burst), f.tokens+dt*f.Rate)
		f.tokensAt = now
	}
}

// capacity returns how many of the key's tasks may start now (refilled),
// at most most, and why not one more. It is never negative: more tasks run
// than a concurrency limit lowered meanwhile allows, or a limit set while
// they ran, leave none.
func (f *flowState) capacity(most int) (int, string) {
	if f.Paused {
		return 0, waitPaused
	}
	n, why := most, ""
	if f.Concurrency > 0 && f.Concurrency-f.Running < n {
		n, why = f.Concurrency-f.Running, waitConcurrency
	}
	if f.Rate > 0 && int(f.tokens) < n {
		n, why = int(f.tokens), waitRate
	}
	return max(n, 0), why
}

// take records that n tasks of the key started.
func (f *flowState) take(n int) {
	f.Running += n
	if f.Rate > 0 {
		f.tokens -= float64(n)
	}
}

// nextToken returns when the bucket next holds a whole token, or the zero
// time when the key has no rate limit or holds one already.
func (f *flowState) nextToken() time.Time {
	if f.Rate <= 0 || f.tokens >= 1 {
		return time.Time{}
	}
	// Capped: for a tiny rate the wait overflows a time.Duration, which
	// then points to the past and wakes the engine at once, forever.
	wait := min((1-f.tokens)/f.Rate, maxTokenWait.Seconds())
	return f.tokensAt.Add(time.Duration(wait * float64(time.Second)))
}

// maxTokenWait bounds the wait for a token that nextToken reports: a wake
// then finds none yet, and waits again.
const maxTokenWait = 24 * time.Hour

// wakeAt returns when the key may start one of its waiting tasks, judged
// at now: now if it has capacity, the next token if only its rate holds it
// back, and the zero time if it is paused or at its concurrency (a running
// task ending wakes it then).
func (f *flowState) wakeAt(now time.Time) time.Time {
	if f.Paused || f.Concurrency > 0 && f.Running >= f.Concurrency {
		return time.Time{}
	}
	if t := f.nextToken(); !t.IsZero() {
		return t
	}
	return now
}

// flowWakeID is the wheel entry of a wake-up for tasks waiting for their
// flow key's capacity: not a task, just a time to claim at.
const flowWakeID = "~flow"

// flowClaim is what a claim of a store of this package tells the engine
// about flow control, through the claim's context: when waiting tasks may
// next start, and which of the tasks it claimed free capacity for others
// when they end.
//
// It also tells the store, the other way, whether tasks were stored or made
// due since the engine's last claim (news): while one app's backlog is
// claimed, a claim looks for other apps' due tasks only now and then
// (fairRecheck), or when there is news.
type flowClaim struct {
	wakeAt  time.Time       // zero: nothing to wake for
	limited map[string]bool // IDs of tasks claimed under a concurrency limit
	// held: the claim took tasks of keys with a concurrency limit; room:
	// the fewest free slots it left one of those keys with. The engine
	// claims none ahead while that is few (see scheduler.capped).
	held bool
	room int
	news bool
	// from: the engine's claim floor, where its claims scan the due
	// index from (claim_floor.go); a claim that scanned from it and saw
	// every task it took sets next to the first of them, and moved.
	from, next duePos
	moved      bool
}

// hasNews reports whether tasks were stored or made due since the engine's
// last claim.
func (fc *flowClaim) hasNews() bool { return fc != nil && fc.news }

type flowClaimKey struct{}

// flowClaimOf returns the flowClaim of a claim's context, or nil.
func flowClaimOf(ctx context.Context) *flowClaim {
	fc, _ := ctx.Value(flowClaimKey{}).(*flowClaim)
	return fc
}

// wake records that waiting tasks may start at t.
func (fc *flowClaim) wake(t time.Time) {
	if fc != nil && !t.IsZero() && (fc.wakeAt.IsZero() || t.Before(fc.wakeAt)) {
		fc.wakeAt = t
	}
}

// heldBy is a task that a claim started under a concurrency limit.
type heldBy struct {
	id string
	l  *flowState
}

// hold records, of the tasks a claim started under a concurrency limit,
// those whose key the claim left at its limit: when they end, tasks that
// wait for the key may start. (A key left below its limit has no task
// waiting for its concurrency: the claim started them.)
func (fc *flowClaim) hold(held []heldBy) {
	if fc == nil {
		return
	}
	for _, h := range held {
		fc.left(h.l.Concurrency - h.l.Running)
		if h.l.Running >= h.l.Concurrency {
			if fc.limited == nil {
				fc.limited = make(map[string]bool)
			}
			fc.limited[h.id] = true
		}
	}
}

// left records that the claim took tasks of a key with a concurrency
// limit, and left it free slots.
func (fc *flowClaim) left(free int) {
	if fc != nil && (!fc.held || free < fc.room) {
		fc.held, fc.room = true, free
	}
}

// SetLimit sets the limit of l's app and key, replacing any it had, and
// returns it as stored. An invalid field gives a *ValidationError naming
// it (app_id, key, rate, burst, concurrency).
func (e *Engine) SetLimit(ctx context.Context, l Limit) (*Limit, error) {
	if err := l.normalize(); err != nil {
		return nil, err
	}
	got, err := e.store.SetLimit(ctx, &l)
	if err != nil {
		return nil, wrapf(err, "set limit %s/%s", l.AppID, l.Key)
	}
	if r := e.current(); r != nil {
		r.mayBeDue.Store(true) // a limit raised or resumed lets tasks start
		r.refill.Store(true)   // a limit of nothing releases its waiting tasks
		r.poke()
	}
	return got, nil
}

// PauseLimit pauses (paused true) or resumes the flow key of an app that
// has a limit, and returns its limit: it changes only Paused, in one atomic
// change in the store, so that a SetLimit made meanwhile, by another engine
// or the HTTP API, is kept. It returns an error matching ErrNotFound if the
// key has no limit.
func (e *Engine) PauseLimit(ctx context.Context, appID, key string, paused bool) (*Limit, error) {
	if err := validateText("app_id", appID, MaxIDLength); err != nil {
		return nil, err
	}
	if err := validateFlowKey("key", key); err != nil {
		return nil, err
	}
	got, err := e.store.PauseLimit(ctx, appID, key, paused)
	if err != nil {
		return nil, wrapf(err, "pause limit %s/%s", appID, key)
	}
	if r := e.current(); r != nil {
		r.mayBeDue.Store(true) // a resumed key lets tasks start
		r.poke()
	}
	return got, nil
}

// Limit returns the limit of an app's flow key, with its running and
// waiting counts, or an error matching ErrNotFound.
func (e *Engine) Limit(ctx context.Context, appID, key string) (*Limit, error) {
	l, err := e.store.GetLimit(ctx, appID, key)
	if err != nil {
		return nil, wrapf(err, "get limit %s/%s", appID, key)
	}
	return l, nil
}

// Limits returns an app's limits, by key, with their running and waiting
// counts.
func (e *Engine) Limits(ctx context.Context, appID string) ([]*Limit, error) {
	ls, err := e.store.ListLimits(ctx, appID)
	if err != nil {
		return nil, wrapf(err, "list limits of %s", appID)
	}
	return ls, nil
}

// DeleteLimit removes the limit of an app's flow key, which releases its
// waiting tasks, or returns an error matching ErrNotFound.
func (e *Engine) DeleteLimit(ctx context.Context, appID, key string) error {
	if err := e.store.DeleteLimit(ctx, appID, key); err != nil {
		return wrapf(err, "delete limit %s/%s", appID, key)
	}
	if r := e.current(); r != nil {
		r.mayBeDue.Store(true)
		r.refill.Store(true) // the released tasks are due
		r.poke()
	}
	return nil
}
