package dashboard_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestUI_EndpointHealth: the endpoints page shows why and since when the
// engine disabled an endpoint, since when one is failing, and when one
// last acknowledged a delivery; it filters them by status; Enable
// re-enables a disabled one.
func TestUI_EndpointHealth(t *testing.T) {
	t.Parallel()
	store := tasks.NewMemoryStore()
	d := newDash(t, store, dashOpts{})
	ctx := context.Background()
	d.login(keyApp1)
	const path = "/apps/app_1/endpoints"
	create := func(url string, status tasks.EndpointStatus) *tasks.Endpoint {
		t.Helper()
		return createEndpoint(t, d.e, tasks.NewEndpoint{URL: url, Status: status})
	}
	healthy := create("https://healthy.example.com/", tasks.EndpointActive)
	failing := create("https://failing.example.com/", tasks.EndpointActive)
	gone := create("https://gone.example.com/", tasks.EndpointActive)
	off := create("https://off.example.com/", tasks.EndpointInactive)
	if _, err := store.RecordEndpointHealth(ctx, failing.ID, false, false, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RecordEndpointHealth(ctx, gone.ID, false, true, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RecordEndpointHealth(ctx, healthy.ID, true, false, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}

	page := d.get(path)
	d.wantStatus("GET endpoints", page, http.StatusOK)
	wantContains(t, "the endpoints page", page.body,
		`<span class="n">4</span> <span class="label">all</span>`,
		`<span class="n">2</span> <span class="label">active</span>`,
		`<span class="n">1</span> <span class="label">disabled by failures</span>`,
		`<span class="n">1</span> <span class="label">inactive by hand</span>`,
		`<span class="badge ep-disabled">disabled</span>`,
		`<span class="disabled-reason">answered 410 Gone</span>`,
		`Failing since <time datetime="`,
		"/"+gone.ID+`/enable"`, "/"+off.ID+`/enable"`, "/"+healthy.ID+`/disable"`)
	rowOf := func(body, id string) string {
		return regexp.MustCompile(`(?s)<tr id="ep-` + id + `">.*?</tr>`).FindString(body)
	}
	wantContains(t, "the healthy endpoint's row", rowOf(page.body, healthy.ID), `Last success <time datetime="`)
	wantNotContains(t, "the healthy endpoint's row", rowOf(page.body, healthy.ID), "Failing since", "Disabled at")
	wantNotContains(t, "the failing endpoint's row", rowOf(page.body, failing.ID), "Last success")
	wantNotContains(t, "the row of the endpoint inactive by hand", rowOf(page.body, off.ID), "Disabled at", "ep-disabled")

	for filter, want := range map[string][]*tasks.Endpoint{
		"active":   {healthy, failing},
		"disabled": {gone},
		"inactive": {off},
	} {
		page := d.get(path + "?status=" + filter)
		d.wantStatus("GET endpoints?status="+filter, page, http.StatusOK)
		wantContains(t, "the "+filter+" filter", page.body, `href="`+uiPrefix+path+`?status=`+filter+`" aria-current="true"`)
		shown := regexp.MustCompile(`<tr id="ep-([^"]+)">`).FindAllStringSubmatch(page.body, -1)
		if len(shown) != len(want) {
			t.Errorf("filter %s: %d rows, want %d", filter, len(shown), len(want))
		}
		for _, ep := range want {
			wantContains(t, "the "+filter+" filter", page.body, `<tr id="ep-`+ep.ID+`">`)
		}
	}
	d.wantStatus("GET endpoints?status=bogus", d.get(path+"?status=bogus"), http.StatusBadRequest)

	p := d.act(path+"?status=disabled", path+"/"+gone.ID+"/enable", nil)
	if p.status != http.StatusSeeOther || p.location() != uiPrefix+path+"?done=enabled" {
		t.Fatalf("POST enable: got %d to %q", p.status, p.location())
	}
	got, err := d.e.Endpoint(ctx, gone.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != tasks.EndpointActive || got.DisabledAt != nil || got.DisabledReason != "" || got.FailingSince != nil {
		t.Errorf("after Enable: %+v, want active with no FailingSince, DisabledAt or DisabledReason", got)
	}
	wantContains(t, "the disabled filter after Enable", d.get(path+"?status=disabled").body, "No endpoint of this app is disabled by failures.")
}
