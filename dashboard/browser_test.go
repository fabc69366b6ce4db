package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/taskwheel/tasks"
)

// Environment variables of the browser tests.
const (
	// requireBrowserEnv, set to 1, makes the browser tests fail instead of
	// skipping when no Chromium is installed, as CI wants.
	requireBrowserEnv = "TASKS_TEST_REQUIRE_BROWSER"
	// screenshotDirEnv names a directory to copy the dashboard's
	// screenshots to, besides the test's temporary directory.
	screenshotDirEnv = "TASKS_TEST_SCREENSHOT_DIR"
)

// chromium returns the path of a Chromium or Chrome binary, or skips t
// (fails it with TASKS_TEST_REQUIRE_BROWSER=1) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatalf("no chromium binary on PATH, and %s=1", requireBrowserEnv)
	}
	t.Skipf("no chromium binary on PATH; install Debian's chromium (or set %s=1 to fail)", requireBrowserEnv)
	return ""
}

// browser is a headless Chromium tab, with its own profile, that fails the
// test on any JavaScript dialog it sees.
type browser struct {
	t       *testing.T
	ctx     context.Context
	dialogs *atomic.Int32 // JavaScript dialogs seen
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	b := &browser{t: t, ctx: ctx, dialogs: new(atomic.Int32)}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser, which lives as long as the
	// context it runs on: ctx, not one with a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	// Each page records what its Content-Security-Policy blocked: an
	// inline style or script of ours, or an injected one that escaping
	// missed. (DevTools' scripts are outside the policy.)
	if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`,
	}); err != nil {
		t.Fatalf("watch for policy violations: %v", err)
	}
	// An XSS payload that ran would open a dialog: count it, and close it
	// so that the page does not hang.
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return // the browser closed
			}
			b.dialogs.Add(1)
			chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b
}

// with returns b for the subtest t.
func (b *browser) with(t *testing.T) *browser {
	return &browser{t: t, ctx: b.ctx, dialogs: b.dialogs}
}

// do runs actions with a timeout, failing the test on an error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// run runs an action that returns a value.
func run[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// load runs trigger, which navigates, and waits for the new page's load.
func (b *browser) load(what string, trigger chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	run(b, what, chromedp.WaitEvent(cdppage.LoadEventFired, nil, trigger))
}

// text returns the text of the first element sel selects.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// eval evaluates a JavaScript expression through DevTools (the page's own
// policy allows no script).
func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	return run(b, "evaluate "+expr, chromedp.Evaluate[T](expr))
}

// checkPage fails the test if the page broke its policy, or has a form
// control without a label, or not exactly one main landmark and one h1.
func (b *browser) checkPage(what string) {
	b.t.Helper()
	if v := evalJS[[]string](b, `window.__csp || ['no policy watcher']`); len(v) > 0 {
		b.t.Errorf("%s: the Content-Security-Policy blocked %q", what, v)
	}
	unlabelled := evalJS[[]string](b, `[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
		.filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.name || e.id)`)
	if len(unlabelled) > 0 {
		b.t.Errorf("%s: form controls without a label: %q", what, unlabelled)
	}
	if n := evalJS[int](b, `document.querySelectorAll('main').length * 10 + document.querySelectorAll('h1').length`); n != 11 {
		b.t.Errorf("%s: %d main landmarks and %d h1, want one of each", what, n/10, n%10)
	}
}

// screenshot saves a full-page PNG as name under the test's temporary
// directory, and under TASKS_TEST_SCREENSHOT_DIR when it is set.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	png := run(b, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(b.t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if dir := os.Getenv(screenshotDirEnv); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}

// TestUI_Browser drives the dashboard in headless Chromium: what a user
// sees and does, with the policy of the pages in force.
func TestUI_Browser(t *testing.T) {
	b := newBrowser(t)
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter) {
		<-release
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"ok":true}`)
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{
		cfg: &tasks.Config{Webhooks: &tasks.WebhookConfig{AllowNetworks: loopback}},
		funcs: map[string]tasks.Func{
			"ok":  func(context.Context, *tasks.Task) error { return nil },
			"bad": func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("card declined")) },
			"flaky": func(_ context.Context, tk *tasks.Task) error {
				if tk.Attempts == 1 { // the first run fails, a replay's succeeds
					return tasks.Permanent(errors.New("receiver down"))
				}
				return nil
			},
		},
	})
	ui := d.srv.URL + uiPrefix
	ctx := context.Background()
	tasksURL := ui + "/apps/app_1/tasks"

	t.Run("LogIn", func(t *testing.T) {
		b := b.with(t)
		b.load("open the dashboard", chromedp.Navigate(ui+"/"))
		if loc := run(b, "location", chromedp.Location()); loc != ui+"/login" {
			t.Fatalf("without a session: at %s, want the login page", loc)
		}
		b.checkPage("the login page")
		b.do("type the key", chromedp.SendKeys(chromedp.ID("key"), keyApp1))
		b.load("log in", chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		if loc := run(b, "location", chromedp.Location()); loc != tasksURL {
			t.Fatalf("after login: at %s, want %s", loc, tasksURL)
		}
		b.do("see the counts", chromedp.WaitVisible(chromedp.CSS(".counts")))
		b.checkPage("the tasks page")
	})

	t.Run("SeeAScheduledTaskAppearAndCancelIt", func(t *testing.T) {
		b := b.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour), Data: json.RawMessage(`{"n":1}`)})
		b.load("reload the tasks", chromedp.Navigate(tasksURL))
		row := "#task-" + tk.ID
		b.do("see the task", chromedp.WaitVisible(chromedp.CSS(row)))
		if got := b.text(row + " .badge"); got != "scheduled" {
			t.Errorf("the task's status: got %q, want scheduled", got)
		}
		b.load("open the task", chromedp.Click(chromedp.CSS(row+" a")))
		b.checkPage("a scheduled task's page")
		b.load("cancel it", chromedp.Click(chromedp.ID("cancel")))
		if got := b.text(".flash"); got != "The task is canceled." {
			t.Errorf("after cancel: flash %q, want The task is canceled.", got)
		}
		if got := b.text("#task-status"); got != "canceled" {
			t.Errorf("after cancel: status %q, want canceled", got)
		}
		if got, _ := d.e.Get(ctx, tk.ID); got.State != tasks.StateCanceled {
			t.Errorf("after cancel: the task is %s, want canceled", got.State)
		}
	})

	t.Run("ReplayAFailedTask", func(t *testing.T) {
		b := b.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "bad", Data: json.RawMessage(`{"card":"4242"}`)})
		waitState(t, d.e, tk.ID, tasks.StateFailed)
		b.load("open the failed task", chromedp.Navigate(tasksURL+"/"+tk.ID))
		if got := b.text("#task-status"); got != "failed" {
			t.Fatalf("status %q, want failed", got)
		}
		b.load("replay it", chromedp.Click(chromedp.ID("replay")))
		if got := b.text(".flash"); got != "The task will run again." {
			t.Errorf("after replay: flash %q", got)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, _ := d.e.Get(ctx, tk.ID)
			if got.State == tasks.StateFailed && got.Attempts == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after replay: %s with %d attempts, want failed again after 2", got.State, got.Attempts)
			}
			time.Sleep(5 * time.Millisecond) // polling interval
		}
		b.load("reload the task", chromedp.Reload())
		if n := evalJS[int](b, `document.querySelectorAll('#attempts tbody tr').length`); n != 2 {
			t.Errorf("after replay: %d attempt rows, want 2", n)
		}
	})

	t.Run("WatchADeliveryAttemptShowUp", func(t *testing.T) {
		b := b.with(t)
		ep := createEndpoint(t, d.e, tasks.NewEndpoint{URL: rc.URL, EnabledEvents: []string{"order.paid"}})
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "order.paid", Data: json.RawMessage(`{"order":7}`)})
		waitState(t, d.e, tk.ID, tasks.StateRunning) // the receiver holds the delivery
		b.load("open the task", chromedp.Navigate(tasksURL+"/"+tk.ID))
		if got := b.text("#attempts-h + p"); got != "No attempt yet." {
			t.Errorf("while delivering: %q, want No attempt yet.", got)
		}
		close(release)
		deadline := time.Now().Add(10 * time.Second)
		for {
			b.load("reload", chromedp.Reload())
			code := evalJS[string](b, `(document.querySelector('#attempts .status-code') || {}).textContent || ''`)
			if code == "200" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no attempt with status 200 showed up; the page has %q", code)
			}
			time.Sleep(20 * time.Millisecond) // a user's reload
		}
		if got := b.text("#task-status"); got != "completed" {
			t.Errorf("after the delivery: status %q, want completed", got)
		}
		wantContains(t, "the attempt row", b.text("#attempts tbody tr"), ep.ID, `{"ok":true}`)
	})

	t.Run("XSSInDataStaysText", func(t *testing.T) {
		b := b.with(t)
		payload := `<script>alert("xss")</script><img src=x onerror=alert(1)>`
		data := json.RawMessage(`{"comment":"<script>alert(\"xss\")</script><img src=x onerror=alert(1)>"}`)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour), Data: data})
		b.load("open the task", chromedp.Navigate(tasksURL+"/"+tk.ID))
		shown := b.text("#task-data")
		if !strings.Contains(shown, `<script>alert(\"xss\")</script>`) {
			t.Errorf("the data as shown: %q, want the payload as text", shown)
		}
		var want map[string]string
		if err := json.Unmarshal([]byte(shown), &want); err != nil || want["comment"] != payload {
			t.Errorf("the data as shown does not read back as the payload: %q (%v)", shown, err)
		}
		if n := evalJS[int](b, `document.querySelectorAll('script, img, #task-data *').length`); n != 0 {
			t.Errorf("the page has %d script, img or nested elements in the data, want none", n)
		}
		if n := b.dialogs.Load(); n != 0 {
			t.Errorf("%d JavaScript dialogs opened, want none", n)
		}
		b.checkPage("the page of a task with an XSS payload")
	})

	t.Run("CrossSitePOSTIsRefused", func(t *testing.T) {
		b := b.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		// The attacker even knows the session's CSRF token.
		token := d.csrfOf(b, tasksURL+"/"+tk.ID)
		action := tasksURL + "/" + tk.ID + "/cancel"
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><title>win a prize</title>
<form method="post" action="%s"><input type="hidden" name="csrf" value="%s"></form>
<script>document.forms[0].submit()</script>`, html.EscapeString(action), html.EscapeString(token))
		}))
		defer evil.Close()
		// The same host on another port is another origin, but the same
		// site: the SameSite=Strict cookie goes along, so the refusal is
		// the dashboard's own origin check. From localhost, another site,
		// the cookie stays home as well.
		for _, origin := range []string{evil.URL, strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)} {
			b.load("open the attacker's page at "+origin, chromedp.Navigate(origin))
			deadline := time.Now().Add(10 * time.Second)
			for run(b, "location", chromedp.Location()) != action {
				if time.Now().After(deadline) {
					t.Fatalf("the attacker's form from %s did not reach the dashboard", origin)
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.do("wait for the answer", chromedp.WaitVisible(chromedp.CSS("h1")))
			if got := b.text("h1"); got != "403 Forbidden" {
				t.Errorf("the cross-site POST from %s: got %q, want 403 Forbidden", origin, got)
			}
			if got, _ := d.e.Get(ctx, tk.ID); got.State != tasks.StateScheduled {
				t.Fatalf("after the cross-site POST from %s: the task is %s, want scheduled", origin, got.State)
			}
		}
	})

	t.Run("OtherPagesAreLabelledAndWithinPolicy", func(t *testing.T) {
		b := b.with(t)
		if _, err := d.e.CreatePeriodic(ctx, tasks.NewPeriodic{AppID: "app_1", Spec: "@daily", EventType: "ok"}); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/apps/app_1/endpoints", "/apps/app_1/schedules", "/apps/app_1/tasks?status=failed", "/apps/app_1/tasks/nope"} {
			b.load("open "+path, chromedp.Navigate(ui+path))
			b.checkPage(path)
		}
		// The watcher of checkPage sees what the policy blocks.
		n := run(b, "break the policy", chromedp.Evaluate[int](`new Promise(done => {
			document.body.insertAdjacentHTML('beforeend', '<img src="http://example.invalid/x.png">');
			setTimeout(() => done(window.__csp.length), 200);
		})`, chromedp.EvalAwaitPromise))
		if n == 0 {
			t.Errorf("an image from another origin: the policy watcher saw no violation")
		}
	})

	t.Run("DeleteATask", func(t *testing.T) {
		b := b.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		b.load("open the task", chromedp.Navigate(tasksURL+"/"+tk.ID))
		b.checkPage("a task's page with its Delete button")
		b.do("confirm", chromedp.Click(chromedp.ID("delete-confirm")))
		b.load("delete it", chromedp.Click(chromedp.ID("delete")))
		if loc := run(b, "location", chromedp.Location()); loc != tasksURL+"?done=deleted" {
			t.Errorf("after delete: at %s, want the task list", loc)
		}
		if got := b.text(".flash"); got != "The task is deleted, with its attempts." {
			t.Errorf("after delete: flash %q", got)
		}
		if _, err := d.e.Get(ctx, tk.ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("after delete: %v, want ErrNotFound", err)
		}
	})

	t.Run("ReplayFailedAndCancelScheduledInBulk", func(t *testing.T) {
		b := b.with(t)
		var failed []*tasks.Task
		for range 3 {
			failed = append(failed, enqueue(t, d.e, tasks.NewTask{EventType: "flaky"}))
		}
		for _, tk := range failed {
			waitState(t, d.e, tk.ID, tasks.StateFailed)
		}
		from, to := uiTime(time.Now().Add(-time.Hour)), uiTime(time.Now().Add(time.Hour))
		filtered := tasksURL + "?event_type=flaky&from=" + from + "&to=" + to
		b.load("filter the list", chromedp.Navigate(filtered))
		b.checkPage("the filtered list with its bulk actions")
		b.screenshot("dashboard-bulk.png")
		b.load("replay the failed ones", chromedp.Click(chromedp.ID("replay-failed")))
		if got := b.text(".flash"); got != "Replayed 3 failed tasks: they will run again." {
			t.Errorf("after the bulk replay: flash %q", got)
		}
		for _, tk := range failed {
			waitState(t, d.e, tk.ID, tasks.StateCompleted)
		}
		for range 2 {
			enqueue(t, d.e, tasks.NewTask{EventType: "flaky", RunAt: time.Now().Add(time.Hour)})
		}
		b.load("filter the list again", chromedp.Navigate(filtered))
		b.load("cancel the scheduled ones", chromedp.Click(chromedp.ID("cancel-scheduled")))
		if got := b.text(".flash"); got != "Canceled 2 scheduled or retrying tasks." {
			t.Errorf("after the bulk cancel: flash %q", got)
		}
		if v := evalJS[string](b, `document.querySelector('#f-event').value`); v != "flaky" {
			t.Errorf("after the bulk cancel: the list's event type filter is %q, want flaky", v)
		}
	})

	t.Run("FilterDisabledEndpointsAndEnableOne", func(t *testing.T) {
		b := b.with(t)
		gone := newReceiver(t, status(http.StatusGone))
		ep := createEndpoint(t, d.e, tasks.NewEndpoint{URL: gone.URL, EnabledEvents: []string{"hook.gone"}})
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "hook.gone", Data: json.RawMessage(`{}`)})
		waitState(t, d.e, tk.ID, tasks.StateFailed) // 410 Gone: the endpoint is disabled
		b.load("open the endpoints", chromedp.Navigate(ui+"/apps/app_1/endpoints"))
		b.load("filter the disabled ones", chromedp.Click(chromedp.CSS(`a.ep-filter-disabled`)))
		b.checkPage("the disabled endpoints")
		row := "#ep-" + ep.ID
		if n := evalJS[int](b, `document.querySelectorAll('table.endpoints tbody tr').length`); n != 1 {
			t.Errorf("disabled endpoints: %d rows, want 1", n)
		}
		if got := b.text(row + " .disabled-reason"); got != "answered 410 Gone" {
			t.Errorf("the disabled endpoint's reason: %q, want answered 410 Gone", got)
		}
		if got := b.text(row + " .badge"); got != "disabled" {
			t.Errorf("the disabled endpoint's badge: %q, want disabled", got)
		}
		b.load("enable it", chromedp.Click(chromedp.CSS(row+` form[action$="/enable"] button`)))
		if got := b.text(".flash"); got != "The endpoint is enabled." {
			t.Errorf("after Enable: flash %q, want The endpoint is enabled.", got)
		}
		if got, _ := d.e.Endpoint(ctx, ep.ID); got.Status != tasks.EndpointActive || got.DisabledAt != nil {
			t.Errorf("after Enable: %s, DisabledAt %v; want active, nil", got.Status, got.DisabledAt)
		}
	})

	t.Run("PauseAndResumeAFlowKey", func(t *testing.T) {
		b := b.with(t)
		if _, err := d.e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "partner", Paused: true}); err != nil {
			t.Fatal(err)
		}
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "ok", FlowKey: "partner"})
		deadline := time.Now().Add(10 * time.Second)
		for got, _ := d.e.Get(ctx, tk.ID); got.WaitReason == ""; got, _ = d.e.Get(ctx, tk.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("the task of the paused key: %+v, want it waiting", got)
			}
			time.Sleep(5 * time.Millisecond) // polling interval
		}
		b.load("open the waiting task", chromedp.Navigate(tasksURL+"/"+tk.ID))
		if got := b.text(".wait-reason"); !strings.Contains(got, "paused") {
			t.Errorf("the waiting task's reason: got %q, want it to say paused", got)
		}
		b.load("open flow control", chromedp.Navigate(ui+"/apps/app_1/limits"))
		b.checkPage("the flow control page")
		if got := b.text("table.limits tbody tr"); !strings.Contains(got, "partner") || !strings.Contains(got, "paused") {
			t.Errorf("the limits row: %q, want partner, paused", got)
		}
		if got := b.text("table.limits tbody tr td:nth-child(6)"); got != "1" {
			t.Errorf("waiting: got %q, want 1", got)
		}
		b.load("resume it", chromedp.Click(chromedp.CSS("table.limits button")))
		if got := b.text(".flash"); !strings.HasPrefix(got, "The flow key is resumed") {
			t.Errorf("after resume: flash %q", got)
		}
		waitState(t, d.e, tk.ID, tasks.StateCompleted)
		b.load("pause it again", chromedp.Click(chromedp.CSS("table.limits button")))
		if l, err := d.e.Limit(ctx, "app_1", "partner"); err != nil || !l.Paused {
			t.Errorf("after pause: %+v, %v; want paused", l, err)
		}
	})

	t.Run("Screenshots", func(t *testing.T) {
		b := b.with(t)
		for i := range 12 {
			et := "ok"
			if i%4 == 3 {
				et = "bad"
			}
			enqueue(t, d.e, tasks.NewTask{EventType: et, Data: json.RawMessage(`{}`)})
		}
		enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(2 * time.Hour)})
		deadline := time.Now().Add(10 * time.Second)
		for {
			counts, _, _ := d.e.List(ctx, tasks.ListParams{AppID: "app_1", States: []tasks.State{tasks.StateRunning}})
			pending, _, _ := d.e.List(ctx, tasks.ListParams{AppID: "app_1", States: []tasks.State{tasks.StateRetrying}})
			if len(counts) == 0 && len(pending) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("tasks still running")
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.load("open the tasks", chromedp.Navigate(tasksURL))
		b.do("see the chart", chromedp.WaitVisible(chromedp.CSS(".chart svg")))
		b.screenshot("dashboard.png")

		b.do("phone width", chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2)))
		b.load("reload at phone width", chromedp.Reload())
		if wide := evalJS[bool](b, `document.documentElement.scrollWidth > window.innerWidth`); wide {
			t.Errorf("at 375px the page is wider than the screen")
		}
		if cols := evalJS[string](b, `getComputedStyle(document.querySelector('.filters .fields')).gridTemplateColumns`); strings.Count(cols, "px") != 1 {
			t.Errorf("at 375px the filters have columns %q, want one", cols)
		}
		b.screenshot("dashboard-phone.png")
		b.do("desktop width", chromedp.EmulateViewport(1280, 900))
	})
}

// csrfOf reads the CSRF token of the page at url in the browser.
func (d *dash) csrfOf(b *browser, url string) string {
	b.load("open "+url, chromedp.Navigate(url))
	return evalJS[string](b, `document.querySelector('input[name=csrf]').value`)
}
