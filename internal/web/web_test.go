package web

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
)

func TestValidName(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, MaxIDLength+1))
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"app_1", true},
		{"a.b:c-d_e", true},
		{"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a b", false},
		{"a/b", false},
		{"<x>", false},
		{"é", false},
		{long, false},
	} {
		if got := ValidName(tt.in); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/apps/a/tasks", "/apps/a/tasks"},
		{"/apps/a/", "/apps/a/"},
		{"apps", "/apps"},
		{"/apps//a", "/apps/a"},
		{"/apps/./a/", "/apps/a/"},
		{"/x/../apps", "/apps"},
	} {
		if got := CleanPath(tt.in); got != tt.want {
			t.Errorf("CleanPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	keys := ParseKeys("test", map[string][]string{"k-b": {"app_1", "app_2"}, "k-a": {AllApps}})
	all := FindKey(keys, "k-a")
	some := FindKey(keys, "k-b")
	if all != 0 || some != 1 || FindKey(keys, "k-") != -1 || FindKey(keys, "") != -1 {
		t.Fatalf("FindKey: k-a at %d, k-b at %d; want 0 and 1, and -1 for other keys", all, some)
	}
	if apps, every := keys[some].GrantedApps(); len(apps) != 2 || apps[0] != "app_1" || apps[1] != "app_2" || every {
		t.Errorf("GrantedApps of k-b = %v, %v; want [app_1 app_2], false", apps, every)
	}
	if !keys[some].Grants("app_2") || keys[some].Grants("app_3") || !keys[all].Grants("app_3") {
		t.Errorf("Grants: k-b grants app_2 but not app_3, k-a every app")
	}
	for _, bad := range []map[string][]string{{"": {"a"}}, {"k": nil}, {"k": {"bad app"}}} {
		func() {
			defer func() {
				if v := recover(); v == nil {
					t.Errorf("ParseKeys(%v) did not panic", bad)
				}
			}()
			ParseKeys("test", bad)
		}()
	}
}

func TestInApp(t *testing.T) {
	missing, notFound, down := errors.New("missing"), errors.New("not found"), errors.New("down")
	objects := map[string]string{"t1": "app_1"} // ID → app
	get := func(_ context.Context, id string) (string, error) {
		if id == "broken" {
			return "", down
		}
		if _, ok := objects[id]; !ok {
			return "", missing
		}
		return id, nil
	}
	for _, tc := range []struct {
		id, app string
		want    string
		err     error
	}{
		{"t1", "app_1", "t1", nil},
		{"t1", "app_2", "", notFound},    // another app's: as if missing
		{"t2", "app_1", "", notFound},    // missing
		{"../t1", "app_1", "", notFound}, // not an ID
		{"broken", "app_1", "", down},    // the store's other errors pass
	} {
		r := httptest.NewRequest("GET", "/x", nil)
		r.SetPathValue("id", tc.id)
		got, err := InApp(t.Context(), r, tc.app, missing, notFound, get, func(id string) string { return objects[id] })
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("InApp(%q, %q) = %q, %v; want %q, %v", tc.id, tc.app, got, err, tc.want, tc.err)
		}
	}
}
