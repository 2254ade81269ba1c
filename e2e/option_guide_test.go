package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBridgeOptionGuide follows the README's guide for a service marked with the bridge's
// option verbatim: a new module beside a checkout of this repository, the replace that lets
// Go find github.com/wsbridge/wsbridge (no proxy serves it), generation, a backend, the
// bridge in front, a create and a retrieve. The test supplies the checkout (a link to this
// repository), buf and the plugins, and starts the server it says to start with `&`.
func TestBridgeOptionGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds buf and a new module")
	}
	steps := readMarked(t, "## Putting it in front of your own gRPC service", "option-guide")
	if len(steps) != 7 {
		t.Fatalf("%d guide steps, want 7", len(steps))
	}
	repo, env, run := guideTools(t)
	parent := t.TempDir()
	if err := os.Symlink(repo, filepath.Join(parent, "wsbridge")); err != nil {
		t.Fatal(err)
	}

	// The first block makes books/ and goes there; the others run in it.
	wd, dir := parent, filepath.Join(parent, "books")
	var frames []string
	for _, st := range steps {
		switch st.kind {
		case "file":
			writeGuideFile(t, dir, st)
		case "run":
			var script []string
			for _, line := range strings.Split(strings.TrimSpace(st.body), "\n") {
				if !strings.HasSuffix(line, "&") {
					script = append(script, line)
				}
			}
			run(wd, "bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
			wd = dir
		case "frames":
			frames = strings.Split(strings.TrimSpace(st.body), "\n")
		}
	}
	checkGuideBooks(t, dir, env, frames, "id", "1")
}
