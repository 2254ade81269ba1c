package e2e_test

import (
	"strings"
	"testing"
)

// TestOwnServiceGuide follows the README's guide verbatim in an empty directory: a new
// module, its AIP-style proto, buf lint and generate with buf's default rules (but the two
// the guide names), a backend, the bridge in front, a create and a retrieve over the
// WebSocket. Installing tools, mkdir/cd and starting the server in the background are done by
// the test itself: the tools come from this repository's pinned versions.
func TestOwnServiceGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds buf and a new module")
	}
	steps := readMarked(t, "## A new service from an empty directory", "guide")
	if len(steps) < 5 {
		t.Fatalf("only %d guide steps", len(steps))
	}
	_, env, run := guideTools(t)
	dir := t.TempDir()
	var frames []string
	for _, st := range steps {
		switch st.kind {
		case "file":
			writeGuideFile(t, dir, st)
		case "run":
			for _, line := range strings.Split(strings.TrimSpace(st.body), "\n") {
				if strings.HasPrefix(line, "go install ") || strings.HasPrefix(line, "mkdir ") || strings.HasSuffix(line, "&") {
					continue
				}
				run(dir, "bash", "-c", line)
			}
		case "frames":
			frames = strings.Split(strings.TrimSpace(st.body), "\n")
		}
	}
	checkGuideBooks(t, dir, env, frames, "name", "books/1")
}
