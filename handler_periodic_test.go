package tasks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// schedule decodes the answer as a periodic task after checking its
// status; raw holds its members as sent.
func (r *response) schedule(t *testing.T, status int) (p *tasks.PeriodicTask, raw map[string]json.RawMessage) {
	t.Helper()
	r.wantStatus(t, status)
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode schedule %s: %v", r.body, err)
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("decode schedule %s: %v", r.body, err)
	}
	return p, raw
}

// createSchedule creates a periodic task in app_1, failing the test unless
// the answer is 201.
func (a *api) createSchedule(body string) *tasks.PeriodicTask {
	a.t.Helper()
	p, _ := a.do("POST", "/apps/app_1/schedules", body).schedule(a.t, http.StatusCreated)
	return p
}

// schedules lists the periodic tasks of path and returns them with the
// answer's body.
func (a *api) schedules(t *testing.T, path string, edits ...func(*http.Request)) ([]*tasks.PeriodicTask, []byte) {
	t.Helper()
	r := a.do("GET", path, "", edits...)
	r.wantStatus(t, http.StatusOK)
	var list struct {
		Data []*tasks.PeriodicTask `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil || list.Data == nil {
		t.Fatalf("decode schedules %s: %v, or data is not a list", r.body, err)
	}
	return list.Data, r.body
}

// ids returns the IDs of ps.
func ids(ps []*tasks.PeriodicTask) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// TestHandler_Schedules walks periodic tasks through every schedule route.
func TestHandler_Schedules(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})
		berlin := mustZone(t, "Europe/Berlin")

		// Create: every field given; data kept byte for byte.
		data := `{ "report": "weekly",  "html": "<b>&</b>", "n": 1.50 }`
		r := a.do("POST", "/apps/app_1/schedules",
			`{"spec":"0 9 * * MON-FRI","time_zone":"Europe/Berlin","event_type":"x","data":`+data+`,"status":"active","missed":"skip"}`)
		weekdays, raw := r.schedule(t, http.StatusCreated)
		if weekdays.ID == "" || weekdays.AppID != "app_1" || weekdays.Spec != "0 9 * * MON-FRI" || weekdays.TimeZone != "Europe/Berlin" ||
			weekdays.EventType != "x" || weekdays.Status != tasks.PeriodicActive || weekdays.Missed != tasks.MissedSkip {
			t.Errorf("created %+v", weekdays)
		}
		if string(raw["data"]) != data || !bytes.HasSuffix(r.body, []byte(`"data":`+data+"}\n")) {
			t.Errorf("create answered %s: data not byte for byte %s", r.body, data)
		}
		if next := weekdays.NextRunAt; next == nil || !next.After(time.Now()) || next.In(berlin).Hour() != 9 || next.Minute() != 0 ||
			next.In(berlin).Weekday() == time.Saturday || next.In(berlin).Weekday() == time.Sunday {
			t.Errorf("next_run_at %v, want a coming weekday at 9:00 in Berlin", next)
		}
		for _, name := range []string{"last_run_at", "last_task_id"} {
			if string(raw[name]) != "null" {
				t.Errorf("%s = %s, want null", name, raw[name])
			}
		}
		if loc := r.header.Get("Location"); loc != "schedules/"+weekdays.ID {
			t.Errorf("Location %q, want schedules/%s", loc, weekdays.ID)
		}

		// Create: the defaults; null data.
		hourly, raw := a.do("POST", "/apps/app_1/schedules", `{"spec":"@hourly","event_type":"x","data":null}`).schedule(t, http.StatusCreated)
		if hourly.TimeZone != "UTC" || hourly.Status != tasks.PeriodicActive || hourly.Missed != tasks.MissedRunOnce || string(raw["data"]) != "null" {
			t.Errorf("defaults: %+v, data %s; want UTC, active, run_once, null", hourly, raw["data"])
		}
		if next := hourly.NextRunAt; next == nil || next.Minute() != 0 || next.Second() != 0 || next.Sub(time.Now()) > time.Hour {
			t.Errorf("next_run_at %v, want the coming full hour", next)
		}
		// Create: paused, so no next run.
		paused, raw := a.do("POST", "/apps/app_1/schedules", `{"spec":"@daily","event_type":"x","data":[],"status":"paused"}`).schedule(t, http.StatusCreated)
		if paused.Status != tasks.PeriodicPaused || string(raw["next_run_at"]) != "null" {
			t.Errorf("paused: status %s, next_run_at %s; want paused, null", paused.Status, raw["next_run_at"])
		}

		// List: oldest first, only app_1's, data byte for byte.
		foreign, _ := a.do("POST", "/apps/app_2/schedules", `{"spec":"@daily","event_type":"x","data":{}}`, withKey(keyAll)).schedule(t, http.StatusCreated)
		list, body := a.schedules(t, "/apps/app_1/schedules")
		if got, want := ids(list), []string{weekdays.ID, hourly.ID, paused.ID}; !slices.Equal(got, want) {
			t.Errorf("list = %v, want %v", got, want)
		}
		if !bytes.Contains(body, []byte(`"data":`+data+`}`)) {
			t.Errorf("list %s: data not byte for byte", body)
		}
		if list, _ := a.schedules(t, "/apps/app_2/schedules", withKey(keyAll)); !slices.Equal(ids(list), []string{foreign.ID}) {
			t.Errorf("app_2's list = %v, want [%s]", ids(list), foreign.ID)
		}
		if _, body := a.schedules(t, "/apps/app_3/schedules", withKey(keyAll)); string(body) != `{"data":[]}`+"\n" {
			t.Errorf("an app without schedules: %s", body)
		}

		// Get.
		path := "/apps/app_1/schedules/" + weekdays.ID
		r = a.do("GET", path, "")
		if got, _ := r.schedule(t, http.StatusOK); got.ID != weekdays.ID || !got.NextRunAt.Equal(*weekdays.NextRunAt) || !got.CreatedAt.Equal(weekdays.CreatedAt) {
			t.Errorf("GET = %+v, want %+v", got, weekdays)
		}
		if !bytes.HasSuffix(r.body, []byte(`"data":`+data+"}\n")) {
			t.Errorf("GET %s: data not byte for byte", r.body)
		}

		// Patch: a new schedule moves next_run_at; the rest stays.
		kolkata := mustZone(t, "Asia/Kolkata")
		moved, raw := a.do("PATCH", path, `{"spec":"30 4 * * *","time_zone":"Asia/Kolkata"}`).schedule(t, http.StatusOK)
		if moved.Spec != "30 4 * * *" || moved.TimeZone != "Asia/Kolkata" || moved.EventType != "x" || moved.Missed != tasks.MissedSkip ||
			string(raw["data"]) != data || moved.NextRunAt == nil || moved.NextRunAt.In(kolkata).Hour() != 4 || moved.NextRunAt.Minute() != 0 ||
			moved.NextRunAt.Sub(time.Now()) > 24*time.Hour {
			t.Errorf("PATCH spec: %+v, data %s", moved, raw["data"])
		}
		newData := `[1,  2, "<&>"]`
		patched, raw := a.do("PATCH", path, `{"data":`+newData+`,"missed":"run_once","event_type":"y"}`).schedule(t, http.StatusOK)
		if string(raw["data"]) != newData || patched.Missed != tasks.MissedRunOnce || patched.EventType != "y" ||
			patched.Spec != moved.Spec || !patched.NextRunAt.Equal(*moved.NextRunAt) {
			t.Errorf("PATCH data: %+v, data %s", patched, raw["data"])
		}
		if same, raw := a.do("PATCH", path, `{}`).schedule(t, http.StatusOK); same.Spec != patched.Spec || string(raw["data"]) != newData {
			t.Errorf("PATCH {}: %+v", same)
		}
		if got, _ := a.do("PATCH", path, `{"time_zone":""}`).schedule(t, http.StatusOK); got.TimeZone != "UTC" {
			t.Errorf(`PATCH time_zone "": %q, want UTC`, got.TimeZone)
		}

		// Pause and resume; twice gives the same answer.
		first := a.do("POST", path+"/pause", "")
		if got, raw := first.schedule(t, http.StatusOK); got.Status != tasks.PeriodicPaused || string(raw["next_run_at"]) != "null" {
			t.Errorf("pause: status %s, next_run_at %s", got.Status, raw["next_run_at"])
		}
		if again := a.do("POST", path+"/pause", `{}`); again.status != http.StatusOK || !bytes.Equal(again.body, first.body) {
			t.Errorf("second pause: %d %s, want %s", again.status, again.body, first.body)
		}
		first = a.do("POST", path+"/resume", "")
		resumed, _ := first.schedule(t, http.StatusOK)
		if resumed.Status != tasks.PeriodicActive || resumed.NextRunAt == nil || !resumed.NextRunAt.After(time.Now()) {
			t.Errorf("resume: status %s, next_run_at %v", resumed.Status, resumed.NextRunAt)
		}
		if again := a.do("POST", path+"/resume", ""); again.status != http.StatusOK || !bytes.Equal(again.body, first.body) {
			t.Errorf("second resume: %d %s, want %s", again.status, again.body, first.body)
		}
		if got, _ := a.do("POST", "/apps/app_1/schedules/"+paused.ID+"/resume", "").schedule(t, http.StatusOK); got.NextRunAt == nil {
			t.Error("resuming a schedule created paused gives no next_run_at")
		}

		// Delete.
		if r := a.do("DELETE", path, ""); r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Errorf("DELETE = %d %s", r.status, r.body)
		}
		a.do("GET", path, "").problem(t, http.StatusNotFound, "", "no schedule")
		a.do("DELETE", path, "").problem(t, http.StatusNotFound, "", "no schedule")
		a.do("POST", path+"/pause", "").problem(t, http.StatusNotFound, "", "no schedule")
		if list, _ := a.schedules(t, "/apps/app_1/schedules"); !slices.Equal(ids(list), []string{hourly.ID, paused.ID}) {
			t.Errorf("after delete: %v, want [%s %s]", ids(list), hourly.ID, paused.ID)
		}
	})
}

// TestHandler_ScheduleRuns: a schedule of every second created through the
// API makes tasks, which run and are listed by the task routes.
func TestHandler_ScheduleRuns(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ran := make(chan *tasks.Task, 100)
		a := newAPI(t, newStore(t), apiOpts{funcs: map[string]tasks.Func{
			"tick": func(_ context.Context, task *tasks.Task) error {
				select {
				case ran <- task:
				default:
				}
				return nil
			},
		}})
		data := `{"n": 1,  "s": "<&>"}`
		p := a.createSchedule(`{"spec":"*/1 * * * * *","event_type":"tick","data":` + data + `}`)

		var first *tasks.Task
		select {
		case first = <-ran:
		case <-time.After(10 * time.Second):
			t.Fatal("no task of the schedule ran within 10s")
		}
		if first.EventType != "tick" || string(first.Data) != data || first.AppID != "app_1" ||
			first.ScheduledRunTime == nil || !first.ScheduledRunTime.Equal(first.ScheduledRunTime.Truncate(time.Second)) {
			t.Errorf("the schedule's task: %+v, want tick in app_1 with data %s at a whole second", first, data)
		}
		done := waitState(t, a.e, first.ID, tasks.StateCompleted)

		// The task routes show it, completed, with its data byte for byte.
		got := a.do("GET", "/apps/app_1/tasks/"+first.ID, "").task(t, http.StatusOK)
		if got.State != tasks.StateCompleted || !got.ScheduledRunTime.Equal(*done.ScheduledRunTime) || string(got.Data) != data {
			t.Errorf("GET the schedule's task: %+v", got)
		}
		l := a.list(t, "/apps/app_1/tasks?event_type=tick&status=completed")
		if !slices.ContainsFunc(l.Data, func(task *tasks.Task) bool { return task.ID == first.ID }) {
			t.Errorf("the completed tasks %v do not hold %s", l.Data, first.ID)
		}

		// The schedule shows its latest enqueued task.
		sched, _ := a.do("GET", "/apps/app_1/schedules/"+p.ID, "").schedule(t, http.StatusOK)
		if sched.LastRunAt == nil || sched.LastTaskID == nil || sched.NextRunAt == nil || !sched.NextRunAt.After(*sched.LastRunAt) ||
			sched.LastRunAt.Before(*first.ScheduledRunTime) {
			t.Fatalf("schedule after a run: last_run_at %v, last_task_id %v, next_run_at %v", sched.LastRunAt, sched.LastTaskID, sched.NextRunAt)
		}
		last := a.do("GET", "/apps/app_1/tasks/"+*sched.LastTaskID, "").task(t, http.StatusOK)
		if !last.ScheduledRunTime.Equal(*sched.LastRunAt) || last.EventType != "tick" {
			t.Errorf("last_task_id's task: %+v, want tick at %v", last, sched.LastRunAt)
		}
		a.do("POST", "/apps/app_1/schedules/"+p.ID+"/pause", "").schedule(t, http.StatusOK)
	})
}

// TestHandler_ScheduleValidation: an invalid spec, time zone, event type,
// status or missed policy gets 422 naming the field, at create and at
// PATCH, and changes nothing; an event type without a route is accepted.
func TestHandler_ScheduleValidation(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{cfg: &tasks.Config{MaxDataBytes: 100}})
	p := a.createSchedule(`{"spec":"@daily","event_type":"x","data":{}}`)
	path := "/apps/app_1/schedules/" + p.ID
	for _, tt := range []struct {
		name, field, value, mention string // field is also the problem's
	}{
		{"malformed spec", "spec", `"every day"`, "expected"},
		{"too few fields", "spec", `"* * * *"`, "5 to 6 fields"},
		{"out of range", "spec", `"61 * * * *"`, "above maximum"},
		{"never matches", "spec", `"0 0 30 2 *"`, "never matches"},
		{"empty spec", "spec", `""`, "empty"},
		{"zone in spec", "spec", `"TZ=UTC 0 0 * * *"`, "time_zone"},
		{"sub-second @every", "spec", `"@every 500ms"`, "1s"},
		{"long spec", "spec", `"0 0 ` + strings.Repeat("1,", 200) + `1 * *"`, "255"},
		{"unknown zone", "time_zone", `"Mars/Olympus_Mons"`, "not a known IANA time zone"},
		{"Local", "time_zone", `"Local"`, "Local"},
		{"path as zone", "time_zone", `"../../etc/passwd"`, "not a known"},
		{"offset as zone", "time_zone", `"+05:30"`, "not a known"},
		{"empty event type", "event_type", `""`, "empty"},
		{"event type with a space", "event_type", `"a b"`, ""},
		{"event type with dots", "event_type", `".a"`, ""},
		{"status", "status", `"running"`, "active"},
		{"missed", "missed", `"catch_up"`, "run_once"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{"spec": `"@hourly"`, "event_type": `"x"`, "data": `{}`, tt.field: tt.value}
			var members []string
			for _, name := range []string{"spec", "time_zone", "event_type", "data", "status", "missed"} {
				if v, ok := fields[name]; ok {
					members = append(members, `"`+name+`":`+v)
				}
			}
			create := "{" + strings.Join(members, ",") + "}"
			a.do("POST", "/apps/app_1/schedules", create).problem(t, http.StatusUnprocessableEntity, tt.field, tt.mention)
			a.do("PATCH", path, `{"data":[],"`+tt.field+`":`+tt.value+`}`).problem(t, http.StatusUnprocessableEntity, tt.field, tt.mention)
		})
	}
	t.Run("W19 data over the limit", func(t *testing.T) {
		big := `"` + strings.Repeat("a", 99) + `"`
		a.do("POST", "/apps/app_1/schedules", `{"spec":"@daily","event_type":"x","data":`+big+`}`).problem(t, http.StatusRequestEntityTooLarge, "data", "100")
		a.do("PATCH", path, `{"data":`+big+`}`).problem(t, http.StatusRequestEntityTooLarge, "data", "100")
	})
	t.Run("nothing changed", func(t *testing.T) {
		got, raw := a.do("GET", path, "").schedule(t, http.StatusOK)
		if got.Spec != p.Spec || got.TimeZone != p.TimeZone || got.EventType != p.EventType || string(raw["data"]) != "{}" ||
			got.Status != p.Status || got.Missed != p.Missed || !got.UpdatedAt.Equal(p.UpdatedAt) {
			t.Errorf("after refused changes: %+v, want %+v", got, p)
		}
		if list, _ := a.schedules(t, "/apps/app_1/schedules"); len(list) != 1 {
			t.Errorf("%d schedules, want 1", len(list))
		}
	})
	// An event type that no func or endpoint handles yet is accepted: the
	// endpoint may be created before the first slot.
	t.Run("no route", func(t *testing.T) {
		a.do("POST", "/apps/app_1/tasks", `{"event_type":"report.weekly","data":{}}`).problem(t, http.StatusUnprocessableEntity, "event_type", "no route")
		later := a.createSchedule(`{"spec":"@weekly","event_type":"report.weekly","data":{}}`)
		if later.EventType != "report.weekly" {
			t.Errorf("event_type %q", later.EventType)
		}
		if got, _ := a.do("PATCH", path, `{"event_type":"report.monthly"}`).schedule(t, http.StatusOK); got.EventType != "report.monthly" {
			t.Errorf("PATCH event_type: %q", got.EventType)
		}
	})
}

// TestHandler_ScheduleStrictJSON_A5toA10: the schedule routes decode as
// strictly as create-task: unknown, wrongly cased and duplicate fields,
// wrong types, missing required fields, trailing data and a body that is
// not JSON get 400 naming the problem; a missing Content-Type 415.
func TestHandler_ScheduleStrictJSON_A5toA10(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	p := a.createSchedule(`{"spec":"@daily","event_type":"x","data":{}}`)
	path := "/apps/app_1/schedules/" + p.ID
	for _, tt := range []struct {
		id, name, body, field, mention string
		patch                          bool // also sent to PATCH
	}{
		{"A5", "unknown field", `{"spec":"@daily","event_type":"x","data":{},"cron":"x"}`, "cron", "unknown field", true},
		{"A5", "read-only field", `{"spec":"@daily","event_type":"x","data":{},"next_run_at":"2030-01-01T00:00:00Z"}`, "next_run_at", "unknown field", true},
		{"A5", "id", `{"id":"x","spec":"@daily","event_type":"x","data":{}}`, "id", "unknown field", true},
		{"A5", "app_id", `{"app_id":"app_2","spec":"@daily","event_type":"x","data":{}}`, "app_id", "unknown field", true},
		{"A6", "trailing data", `{"spec":"@daily","event_type":"x","data":{}} {}`, "", "trailing", true},
		{"A7", "duplicate key", `{"spec":"@daily","spec":"@hourly","event_type":"x","data":{}}`, "spec", "duplicate", true},
		{"A7", "wrong-case key", `{"Spec":"@daily","event_type":"x","data":{}}`, "Spec", "case-sensitive", true},
		{"A7", "camel-case key", `{"spec":"@daily","timeZone":"UTC","event_type":"x","data":{}}`, "timeZone", "unknown field", true},
		{"A8", "null spec", `{"spec":null,"event_type":"x","data":{}}`, "spec", "null", true},
		{"A8", "number spec", `{"spec":5,"event_type":"x","data":{}}`, "spec", "string", true},
		{"A8", "array spec", `{"spec":["0","*"],"event_type":"x","data":{}}`, "spec", "string", true},
		{"A8", "number time_zone", `{"spec":"@daily","time_zone":1,"event_type":"x","data":{}}`, "time_zone", "string", true},
		{"A8", "null time_zone", `{"spec":"@daily","time_zone":null,"event_type":"x","data":{}}`, "time_zone", "null", true},
		{"A8", "null event_type", `{"spec":"@daily","event_type":null,"data":{}}`, "event_type", "null", true},
		{"A8", "boolean status", `{"spec":"@daily","event_type":"x","data":{},"status":true}`, "status", "string", true},
		{"A8", "object missed", `{"spec":"@daily","event_type":"x","data":{},"missed":{}}`, "missed", "string", true},
		{"A8", "missing spec", `{"event_type":"x","data":{}}`, "spec", "required", false},
		{"A8", "missing event_type", `{"spec":"@daily","data":{}}`, "event_type", "required", false},
		{"A8", "missing data", `{"spec":"@daily","event_type":"x"}`, "data", "required", false},
		{"A8", "array body", `[{"spec":"@daily","event_type":"x","data":{}}]`, "", "object", true},
		{"A8", "not JSON", `spec=@daily`, "", "not valid JSON", true},
		{"A8", "empty body", ` `, "", "not valid JSON", true},
		{"A9", "absurd number", `{"spec":1e999999999,"event_type":"x","data":{}}`, "spec", "string", true},
		{"A9", "deep nesting", `{"spec":"@daily","event_type":"x","data":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`, "", "nested", true},
		{"A10", "invalid UTF-8", "{\"spec\":\"@daily\xff\",\"event_type\":\"x\",\"data\":{}}", "", "UTF-8", true},
	} {
		t.Run(tt.id+" "+tt.name, func(t *testing.T) {
			a.do("POST", "/apps/app_1/schedules", tt.body).problem(t, http.StatusBadRequest, tt.field, tt.mention)
			if tt.patch {
				a.do("PATCH", path, tt.body).problem(t, http.StatusBadRequest, tt.field, tt.mention)
			}
		})
	}
	t.Run("pause and resume take no fields", func(t *testing.T) {
		for _, op := range []string{"/pause", "/resume"} {
			a.do("POST", path+op, `{"status":"paused"}`).problem(t, http.StatusBadRequest, "status", "no fields")
			a.do("POST", path+op, `[]`).problem(t, http.StatusBadRequest, "", "object")
		}
	})
	t.Run("A4 Content-Type", func(t *testing.T) {
		body := `{"spec":"@daily","event_type":"x","data":{}}`
		a.do("POST", "/apps/app_1/schedules", body, header("Content-Type", "")).problem(t, http.StatusUnsupportedMediaType, "")
		a.do("PATCH", path, `{"spec":"@hourly"}`, header("Content-Type", "text/plain")).problem(t, http.StatusUnsupportedMediaType, "")
	})
	t.Run("nothing changed", func(t *testing.T) {
		list, _ := a.schedules(t, "/apps/app_1/schedules")
		if len(list) != 1 || list[0].Spec != "@daily" || list[0].Status != tasks.PeriodicActive || !list[0].UpdatedAt.Equal(p.UpdatedAt) {
			t.Errorf("after refused requests: %+v, want only %+v unchanged", list, p)
		}
	})
}

// TestHandler_ScheduleOtherApp_A18: another app's schedule is a 404
// identical to a missing one's, on every route, and stays untouched; so are
// malformed IDs (A21).
func TestHandler_ScheduleOtherApp_A18(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	all := withKey(keyAll)
	foreign, _ := a.do("POST", "/apps/app_2/schedules", `{"spec":"@daily","event_type":"x","data":{}}`, all).schedule(t, http.StatusCreated)
	missing := a.do("GET", "/apps/app_1/schedules/0190a0a0-0000-7000-8000-000000000000", "").problem(t, http.StatusNotFound, "")
	for _, id := range []string{foreign.ID, "1'%20OR%20'1'%3D'1", strings.Repeat("a", 10000), "%00", "*"} {
		for _, req := range []struct{ method, path, body string }{
			{"GET", "", ""},
			{"PATCH", "", `{"status":"paused"}`},
			{"DELETE", "", ""},
			{"POST", "/pause", ""},
			{"POST", "/resume", ""},
		} {
			if p := a.do(req.method, "/apps/app_1/schedules/"+id+req.path, req.body, all).problem(t, http.StatusNotFound, ""); p != missing {
				t.Errorf("%s %.40s%s: %+v, want the answer for a missing schedule %+v", req.method, id, req.path, p, missing)
			}
		}
	}
	// keyApp1 does not grant app_2: the app is not found either.
	a.do("GET", "/apps/app_2/schedules", "").problem(t, http.StatusNotFound, "")
	a.do("GET", "/apps/app_2/schedules/"+foreign.ID, "").problem(t, http.StatusNotFound, "")
	a.do("POST", "/apps/app_2/schedules", `{"spec":"@daily","event_type":"x","data":{}}`).problem(t, http.StatusNotFound, "")

	got, _ := a.do("GET", "/apps/app_2/schedules/"+foreign.ID, "", all).schedule(t, http.StatusOK)
	if got.Status != tasks.PeriodicActive || !got.UpdatedAt.Equal(foreign.UpdatedAt) {
		t.Errorf("another app's schedule after the attempts: %+v, want untouched %+v", got, foreign)
	}
}

// TestHandler_ScheduleAuth_A1: every schedule route wants a key.
func TestHandler_ScheduleAuth_A1(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	p := a.createSchedule(`{"spec":"@daily","event_type":"x","data":{}}`)
	path := "/apps/app_1/schedules/" + p.ID
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/apps/app_1/schedules", ""},
		{"POST", "/apps/app_1/schedules", `{"spec":"@daily","event_type":"x","data":{}}`},
		{"GET", path, ""},
		{"PATCH", path, `{"status":"paused"}`},
		{"DELETE", path, ""},
		{"POST", path + "/pause", ""},
		{"POST", path + "/resume", ""},
	} {
		for _, auth := range []string{"", "Bearer nope"} {
			r := a.do(req.method, req.path, req.body, header("Authorization", auth))
			r.problem(t, http.StatusUnauthorized, "")
			if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
				t.Errorf("%s %s: WWW-Authenticate %q, want Bearer", req.method, req.path, ch)
			}
		}
	}
	if got, _ := a.do("GET", path, "").schedule(t, http.StatusOK); got.Status != tasks.PeriodicActive || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Errorf("after unauthenticated requests: %+v, want untouched", got)
	}
}

// TestHandler_ScheduleRoutes_A17: a wrong method on a schedule route gets
// 405 with Allow.
func TestHandler_ScheduleRoutes_A17(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	for _, tt := range []struct{ method, path, allow string }{
		{"DELETE", "/apps/app_1/schedules", "GET, HEAD, POST"},
		{"PUT", "/apps/app_1/schedules/s1", "DELETE, GET, HEAD, PATCH"},
		{"POST", "/apps/app_1/schedules/s1", "DELETE, GET, HEAD, PATCH"},
		{"GET", "/apps/app_1/schedules/s1/pause", "POST"},
		{"PATCH", "/apps/app_1/schedules/s1/resume", "POST"},
	} {
		r := a.do(tt.method, tt.path, "")
		r.problem(t, http.StatusMethodNotAllowed, "", tt.method)
		if got := r.header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
	a.do("POST", "/apps/app_1/schedules/s1/run", "").problem(t, http.StatusNotFound, "")
}

// TestHandler_ScheduleErrors_A16: store errors on the schedule routes
// become a 503 with Retry-After and a generic message.
func TestHandler_ScheduleErrors_A16(t *testing.T) {
	t.Parallel()
	store := &failingStore{Store: tasks.NewMemoryStore()}
	a := newAPI(t, store, apiOpts{noStart: true})
	p := a.createSchedule(`{"spec":"@daily","event_type":"x","data":{}}`)
	store.fail.Store(true)
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/apps/app_1/schedules", ""},
		{"POST", "/apps/app_1/schedules", `{"spec":"@daily","event_type":"x","data":{}}`},
		{"GET", "/apps/app_1/schedules/" + p.ID, ""},
		{"PATCH", "/apps/app_1/schedules/" + p.ID, `{"status":"paused"}`},
		{"POST", "/apps/app_1/schedules/" + p.ID + "/pause", ""},
		{"DELETE", "/apps/app_1/schedules/" + p.ID, ""},
	} {
		r := a.do(req.method, req.path, req.body)
		r.problem(t, http.StatusServiceUnavailable, "", "unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", req.method, req.path)
		}
	}
	store.fail.Store(false)
	if list, _ := a.schedules(t, "/apps/app_1/schedules"); len(list) != 1 || list[0].Status != tasks.PeriodicActive {
		t.Errorf("after the failures: %+v, want the one schedule, active", list)
	}
}

func (s *failingStore) InsertPeriodic(ctx context.Context, p *tasks.PeriodicTask) (*tasks.PeriodicTask, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.InsertPeriodic(ctx, p)
}

func (s *failingStore) GetPeriodic(ctx context.Context, id string) (*tasks.PeriodicTask, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.GetPeriodic(ctx, id)
}

func (s *failingStore) ListPeriodics(ctx context.Context, app string) ([]*tasks.PeriodicTask, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ListPeriodics(ctx, app)
}
