package e2e_test

import (
	"slices"
	"strings"
	"testing"
)

// exposedStreams is the bridge's streams as a client learns them, from /schema: sorted and
// comma-separated.
func exposedStreams(t *testing.T, e *env) string {
	t.Helper()
	var names []string
	for name := range getSchema(t, e).Streams {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}
