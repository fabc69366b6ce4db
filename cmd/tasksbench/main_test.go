package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwheel/tasks/internal/testdb"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// engine stopped, server shut down and database closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := parseConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.count != 3 || c.drain != 50000 || c.steady != 10*time.Second || c.lateness != 5000 ||
		c.webhooks != 5000 || c.http != (durationOrCount{d: 5 * time.Second}) || c.memTasks != 1_000_000 ||
		c.jsonPath != "tasksbench.json" || c.latenessFrom != 2*time.Second || c.latenessTo != 4*time.Second {
		t.Errorf("defaults: got %+v", c)
	}
	if got, want := []string(c.stores), storeNames; !slices.Equal(got, want) {
		t.Errorf("default -stores: got %v, want %v", got, want)
	}

	c, err = parseConfig([]string{"-http", "20000", "-stores", "sqlite, memory", "-workloads", "W3,M1",
		"-postgres", "postgres://u:secret@h/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.http != (durationOrCount{n: 20000}) {
		t.Errorf("-http 20000: got %+v, want a count", c.http)
	}
	if got, want := []string(c.stores), []string{"sqlite", "memory"}; !slices.Equal(got, want) {
		t.Errorf("-stores: got %v, want %v", got, want)
	}
	if strings.Contains(c.flags["postgres"], "secret") {
		t.Errorf("the report's flags show the password: %q", c.flags["postgres"])
	}

	for _, args := range [][]string{
		{"-stores", "mysql"},
		{"-workloads", "W99"},
		{"-history", "1"},
		{"-count", "0"},
		{"-http", "-1s"},
		{"-lateness-from", "3s", "-lateness-to", "1s"},
		{"-duration", "0s"},
		{"-vacuum", "-1s"},
		{"-flowdrains", "0"},
		{"extra"},
	} {
		if _, err := parseConfig(args, nil); err == nil {
			t.Errorf("parseConfig(%q): got no error", args)
		}
	}
	var usage bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "-memtasks") {
		t.Errorf("-h: got %v and usage %q", err, usage.String())
	}
}

// TestRun runs every workload once with tiny sizes, on memory and SQLite,
// and on PostgreSQL when TASKS_TEST_POSTGRES_URL is set, in a schema that
// the test made (tasksbench must leave it). It checks the table and the
// JSON report, not the figures, except that every figure is positive and
// no task started early.
func TestRun(t *testing.T) {
	stores := []string{"memory", "sqlite"} // and PostgreSQL, when the tests have it
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	args := []string{
		"-count", "1", "-enqueue", "200", "-batch", "200", "-drain", "200", "-steady", "300ms",
		"-lateness", "50", "-lateness-from", "100ms", "-lateness-to", "300ms", "-webhooks", "50",
		"-http", "300ms", "-memtasks", "2000", "-json", jsonPath,
	}
	out, stores := runOn(t, args, stores)

	type key struct{ figure, store string }
	type tableRow struct {
		median       float64
		floor, ratio string
	}
	table := make(map[key]tableRow)
	sc := bufio.NewScanner(strings.NewReader(out))
	inTable := false
	cols := regexp.MustCompile(`\s{2,}`)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, tableHeader+" ") {
			inTable = true
			continue
		}
		if !inTable || line == "" {
			continue
		}
		f := cols.Split(line, -1)
		if len(f) != 6 {
			t.Fatalf("table row %q: got %d columns, want 6", line, len(f))
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(f[2], ",", ""), 64)
		if err != nil {
			t.Fatalf("table row %q: median: %v", line, err)
		}
		table[key{f[0], f[1]}] = tableRow{v, f[4], f[5]}
	}
	if !inTable {
		t.Fatal("no table in the output")
	}

	common := []string{"W1 enqueue", "W2 batch enqueue", "W3 drain", "W4 steady completed", "W4 steady enqueued", "W4 steady wait p50",
		"W4 steady wait p99", "W5 lateness p50", "W5 lateness p99", "W5 lateness max", "W5 lateness early",
		"W6 webhooks", "W6 webhooks " + vsPost, "W6 webhooks cpu", "W6 webhooks POST cpu", "W7 HTTP create"}
	withFloor := map[string]bool{"W1 enqueue": true, "W2 batch enqueue": true, "W3 drain": true, "W4 steady completed": true,
		"W7 HTTP create": true}
	// Beside the bare floors, the own-table floors, on SQL stores.
	ownTables := []string{"W1 enqueue", "W2 batch enqueue", "W3 drain", "W7 HTTP create"}
	var want []key
	for _, s := range stores {
		figs := slices.Clone(common)
		switch s {
		case "memory":
			figs = append(figs, "M1 memory store heap", "M1 memory store per task")
		case "sqlite":
			figs = append(figs, "M2 engine heap", "M2 engine per task")
		}
		// W6 against its combined floor, and against each of the two it
		// combines: the drain's, on memory the engine's own W3.
		if s == "memory" {
			figs = append(figs, "W6 webhooks "+vsMemoryW3)
		} else {
			figs = append(figs, "W6 webhooks "+vsDrain)
		}
		if s != "memory" {
			for _, f := range ownTables {
				figs = append(figs, f+" "+ownTable)
				withFloor[f+" "+ownTable] = true
			}
		}
		for _, f := range figs {
			k := key{f, s}
			want = append(want, k)
			r, ok := table[k]
			if !ok {
				t.Errorf("table: no row %q on %s", f, s)
				continue
			}
			switch {
			case f == "W5 lateness early" && r.median != 0:
				t.Errorf("%s on %s: %v tasks started early, want 0", f, s, r.median)
			case f != "W5 lateness early" && r.median <= 0:
				t.Errorf("%s on %s: got %v, want a positive figure", f, s, r.median)
			}
			hasFloor := strings.HasPrefix(f, "W6 webhooks") && !strings.HasSuffix(f, "cpu") || withFloor[f] && s != "memory"
			if got := r.floor != "—" && r.ratio != "—"; got != hasFloor {
				t.Errorf("%s on %s: floor %q, ratio %q; want a floor: %v", f, s, r.floor, r.ratio, hasFloor)
			}
		}
	}
	if len(table) != len(want) {
		t.Errorf("table: got %d rows, want %d", len(table), len(want))
	}

	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	if rep.GoVersion == "" || rep.NumCPU == 0 || rep.Date == "" || rep.Flags["drain"] != "200" {
		t.Errorf("report: got go_version %q, num_cpu %d, date %q, flags %v", rep.GoVersion, rep.NumCPU, rep.Date, rep.Flags)
	}
	var got []key
	for _, r := range rep.Rows {
		k := key{r.Figure, r.Store}
		got = append(got, k)
		if len(r.Runs) != 1 || r.Runs[0] != r.Median {
			t.Errorf("report: %s on %s: runs %v, median %v; want one run", r.Figure, r.Store, r.Runs, r.Median)
		}
		if tr := table[k]; format(r.Median) != format(tr.median) {
			t.Errorf("report: %s on %s: median %v, the table's %v", r.Figure, r.Store, r.Median, tr.median)
		}
		if (r.FloorMedian > 0) != (table[k].floor != "—") {
			t.Errorf("report: %s on %s: floor %v, the table's %q", r.Figure, r.Store, r.FloorMedian, table[k].floor)
		}
	}
	// W6's floor is its two floors combined, run by run.
	byKey := make(map[key]*row)
	for _, r := range rep.Rows {
		byKey[key{r.Figure, r.Store}] = r
	}
	for _, s := range stores {
		vs := vsDrain
		if s == "memory" {
			vs = vsMemoryW3
		}
		w6, post, drain := byKey[key{"W6 webhooks", s}], byKey[key{"W6 webhooks " + vsPost, s}], byKey[key{"W6 webhooks " + vs, s}]
		if w6 == nil || post == nil || drain == nil || len(w6.FloorRuns) != 1 || len(post.FloorRuns) != 1 || len(drain.FloorRuns) != 1 {
			t.Errorf("report: W6 on %s: missing rows or floors", s)
			continue
		}
		p, d := post.FloorRuns[0], drain.FloorRuns[0]
		if got, want := w6.FloorRuns[0], p*d/(p+d); math.Abs(got-want) > 1e-9*want {
			t.Errorf("report: W6 on %s: floor %v, want %v, POST floor %v and drain floor %v combined", s, got, want, p, d)
		}
		if w6.Median != post.Median || w6.Median != drain.Median {
			t.Errorf("report: W6 on %s: figures %v, %v, %v; want one figure against three floors", s, w6.Median, post.Median, drain.Median)
		}
	}
	sortKeys := func(ks []key) {
		slices.SortFunc(ks, func(a, b key) int { return strings.Compare(a.store+a.figure, b.store+b.figure) })
	}
	sortKeys(got)
	sortKeys(want)
	if !slices.Equal(got, want) {
		t.Errorf("report rows: got %v, want %v", got, want)
	}
}

// TestRunHistory runs W9 once with a history of 2,000 tasks, on SQLite and
// on PostgreSQL when TASKS_TEST_POSTGRES_URL is set: every figure is in the
// table and positive, and no task started early. Its retention pass
// begins about 5 s after its engine starts, as the engine's does; on
// PostgreSQL it runs VACUUM every 500 ms meanwhile.
func TestRunHistory(t *testing.T) {
	t.Parallel()
	stores := []string{"sqlite"} // and PostgreSQL, when the tests have it
	args := []string{
		"-count", "1", "-workloads", "W9", "-history", "2000", "-reads", "3", "-drain", "200",
		"-lateness", "50", "-lateness-from", "100ms", "-lateness-to", "300ms", "-http", "200",
		"-vacuum", "500ms", "-json", filepath.Join(t.TempDir(), "report.json"),
	}
	out, stores := runOn(t, args, stores, "memory")
	if os.Getenv(testdb.PostgresURLEnv) != "" && !regexp.MustCompile(`W9 retention pass: \d+ VACUUMs`).MatchString(out) {
		t.Error("W9 on postgres with -vacuum 500ms: no VACUUM reported")
	}
	var figures []string
	for _, f := range []string{"fill", "fill settle"} {
		figures = append(figures, "W9 history "+f)
	}
	for _, r := range []string{"counts", "list", "list failed", "dashboard home", "dashboard tasks"} {
		for _, f := range []string{" p50 empty", " p50", " p99"} {
			figures = append(figures, "W9 history "+r+f)
		}
	}
	for _, f := range []string{"dashboard tasks cold", "W5 p50 empty", "W5 p50", "W5 p99 empty", "W5 p99", "W5 early",
		"W3 drain empty", "W3 drain", "W3 drain ratio", "W7 create empty", "W7 create", "W7 create ratio",
		"retention deleted", "retention time", "retention rate", "retention batch p50", "retention batch p99", "retention W5 p50", "retention W5 p99",
		"retention W5 max", "retention W5 tasks", "retention W5 early", "retention W5 over 1 s", "retention size before",
		"retention size after", "retention rows after"} {
		figures = append(figures, "W9 history "+f)
	}
	rows := tableRows(t, out)
	for _, s := range stores {
		// Everything finished was deleted: the history, W3's tasks and
		// those of W7, which the pass's engine ran.
		if got := rows["W9 history retention deleted on "+s]; got < 2000+200+200 {
			t.Errorf("retention on %s deleted %v tasks, want at least the history, W3's and W7's, %d", s, got, 2000+200+200)
		}
		rows["W9 history retention rows after on "+s]++  // may be 0
		rows["W9 history retention W5 over 1 s on "+s]++ // likewise
	}
	if len(rows) != len(figures)*len(stores) {
		t.Errorf("table: got %d rows, want %d (W9 runs on %v only)", len(rows), len(figures)*len(stores), stores)
	}
	for _, s := range stores {
		for _, f := range figures {
			v, ok := rows[f+" on "+s]
			switch {
			case !ok:
				t.Errorf("table: no row %q on %s", f, s)
			case strings.HasSuffix(f, "early") && v != 0:
				t.Errorf("%s on %s: %v tasks started early, want 0", f, s, v)
			case !strings.HasSuffix(f, "early") && v <= 0:
				t.Errorf("%s on %s: got %v, want a positive figure", f, s, v)
			}
		}
	}
}

// tableRows returns the medians of the table that run printed, by
// figure and store ("W3 drain on sqlite").
func tableRows(t *testing.T, out string) map[string]float64 {
	t.Helper()
	i := strings.Index(out, "\n"+tableHeader+" ")
	if i < 0 {
		t.Fatalf("no table in the output:\n%s", out)
	}
	cols := regexp.MustCompile(`\s{2,}`)
	rows := make(map[string]float64)
	for _, line := range strings.Split(strings.TrimSpace(out[i:]), "\n")[1:] {
		f := cols.Split(strings.TrimSpace(line), -1)
		v, err := strconv.ParseFloat(strings.ReplaceAll(f[2], ",", ""), 64)
		if err != nil {
			t.Fatalf("table row %q: %v", line, err)
		}
		rows[f[0]+" on "+f[1]] = v
	}
	return rows
}

// TestRunRetentionSteady runs W10 for two seconds, sampling every half
// second, on SQLite and on PostgreSQL when TASKS_TEST_POSTGRES_URL is set,
// there with a VACUUM every 700 ms: it prints a sample table per store,
// from the empty store to the end, and its figures.
func TestRunRetentionSteady(t *testing.T) {
	t.Parallel()
	stores := []string{"sqlite"} // and PostgreSQL, when the tests have it
	args := []string{"-count", "1", "-workloads", "W10", "-duration", "2s", "-sample", "500ms", "-retain", "1s",
		"-vacuum", "700ms", "-json", filepath.Join(t.TempDir(), "report.json")}
	out, stores := runOn(t, args, stores, "memory")
	// Each store's samples: a header, then a row at 0s, every 500ms, and
	// at 2s.
	samples := regexp.MustCompile(`(?m)^W10 on (\w+):.*\n\s+time\s+ran\s+rows\s+size MB\s+free MB\s+dead rows\n((?:\s+\d.*\n)+)`)
	got := samples.FindAllStringSubmatch(out, -1)
	if len(got) != len(stores) {
		t.Fatalf("got %d sample tables, want %d, one per store (W10 runs on %v only)", len(got), len(stores), stores)
	}
	for i, m := range got {
		lines := strings.Split(strings.TrimSpace(m[2]), "\n")
		if m[1] != stores[i] || len(lines) != 5 || !strings.HasPrefix(strings.TrimSpace(lines[0]), "0s ") ||
			!strings.HasPrefix(strings.TrimSpace(lines[4]), "2s ") {
			t.Errorf("samples on %s: got %q, want 5 rows on %s, from 0s to 2s", m[1], lines, stores[i])
		}
	}
	if os.Getenv(testdb.PostgresURLEnv) != "" && !regexp.MustCompile(`W10 on postgres: \d+ VACUUMs`).MatchString(out) {
		t.Error("W10 on postgres with -vacuum 700ms: no VACUUM reported")
	}
	rows := tableRows(t, out)
	for _, s := range stores {
		for _, f := range []string{"completed", "rows at end", "size at 3/10", "size at end"} {
			if v, ok := rows["W10 retention steady "+f+" on "+s]; !ok || v <= 0 {
				t.Errorf("W10 retention steady %s on %s: got %v (in the table: %v), want a positive figure", f, s, v, ok)
			}
		}
		if _, ok := rows["W10 retention steady growth from 3/10 on "+s]; !ok {
			t.Errorf("table: no row W10 retention steady growth from 3/10 on %s", s)
		}
	}
	if len(rows) != 5*len(stores) {
		t.Errorf("table: got %d rows, want %d", len(rows), 5*len(stores))
	}
}

// runOn runs tasksbench with args on stores, and on PostgreSQL when
// TASKS_TEST_POSTGRES_URL is set, with -stores naming also the stores of
// only, on which the workloads asked for do not run. It returns the output
// and the stores, PostgreSQL added.
func runOn(t *testing.T, args, stores []string, only ...string) (string, []string) {
	t.Helper()
	if os.Getenv(testdb.PostgresURLEnv) != "" {
		_, dsn := testdb.PostgresDSN(t)
		args = append(args, "-postgres", dsn)
		stores = append(stores, "postgres")
	}
	args = append(args, "-stores", strings.Join(append(only, stores...), ","))
	var out bytes.Buffer
	if err := run(t.Context(), args, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, &out)
	}
	t.Logf("output:\n%s", &out)
	return out.String(), stores
}

// TestFormat checks the table's numbers, at the edges where rounding
// carries a figure into the next width: the report's medians are compared
// with the table's by formatting both.
func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{0.004, "0.00"},
		{1.234, "1.23"},
		{9.994, "9.99"},
		{9.996821, "10.0"},
		{10, "10.0"},
		{99.94, "99.9"},
		{99.96, "100"},
		{100, "100"},
		{1234567.8, "1,234,568"},
	} {
		if got := format(tc.v); got != tc.want {
			t.Errorf("format(%v): got %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestTruncateEmptiesEveryTable checks that the statement with which
// tasksbench empties its tables between runs names every table of the
// library but its migrations' record (one left out keeps a run's rows for
// the next), on a schema that tasksbench's own setup migrated, and that
// reset runs it.
func TestTruncateEmptiesEveryTable(t *testing.T) {
	t.Parallel()
	db, dsn := testdb.PostgresDSN(t)
	p, err := openPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close(t.Context())
	named := map[string]bool{}
	for _, f := range strings.FieldsFunc(strings.TrimPrefix(truncate, "TRUNCATE "), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n' || r == '\t'
	}) {
		named[f] = true
	}
	rows, err := db.QueryContext(t.Context(), `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name LIKE 'taskwheel\_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			t.Fatal(err)
		}
		n++
		if table != "taskwheel_migrations" && !named[table] {
			t.Errorf("table %s: not in truncate", table)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("got %d tables in the schema, want the library's", n)
	}
	if err := p.reset(t.Context()); err != nil {
		t.Fatal(err)
	}
}
