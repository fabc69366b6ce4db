package tasks

import (
	"testing"
)

// FuzzParseAttemptID: an ID that parses is the attemptID of what it
// parsed to, and attemptID's IDs parse back.
func FuzzParseAttemptID(f *testing.F) {
	f.Add("01a219a3-f425-724b-b9f0-c8ed7cb273a9", 3, "c13bf585-e56f-47be-b6aa-0cb2436df12b")
	f.Add("a", 1, "b.c")
	f.Add("", 0, "")
	f.Fuzz(func(t *testing.T, taskID string, number int, endpointID string) {
		id := attemptID(&Attempt{TaskID: taskID, Number: number, EndpointID: endpointID})
		gotTask, gotNumber, gotEndpoint, ok := parseAttemptID(id)
		if ok && attemptID(&Attempt{TaskID: gotTask, Number: gotNumber, EndpointID: gotEndpoint}) != id {
			t.Errorf("parseAttemptID(%q) = %q, %d, %q, which make another ID", id, gotTask, gotNumber, gotEndpoint)
		}
		wellFormed := taskID != "" && endpointID != "" && number >= 0 && number <= MaxMaxAttempts && !containsDot(taskID)
		if wellFormed && (!ok || gotTask != taskID || gotNumber != number || gotEndpoint != endpointID) {
			t.Errorf("parseAttemptID(attemptID(%q, %d, %q)) = %q, %d, %q, %v", taskID, number, endpointID, gotTask, gotNumber, gotEndpoint, ok)
		}
	})
}

func containsDot(s string) bool {
	for i := range len(s) {
		if s[i] == '.' {
			return true
		}
	}
	return false
}
