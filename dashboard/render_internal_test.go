package dashboard

import "testing"

func TestFmtCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {10000, "10,000"},
		{123456, "123,456"}, {1234567, "1,234,567"}, {-1234, "-1,234"}, {-123, "-123"},
	} {
		if got := fmtCount(tc.n); got != tc.want {
			t.Errorf("fmtCount(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
