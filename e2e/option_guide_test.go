package e2e_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readMarked returns the blocks of the README section under heading that follow a
// "<!-- marker: kind [arg] -->" line, in order.
func readMarked(t *testing.T, heading, marker string) []guideStep {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no section %q", heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var steps []guideStep
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		m, ok := strings.CutPrefix(line, "<!-- "+marker+": ")
		if !ok {
			continue
		}
		kind, arg, _ := strings.Cut(strings.TrimSuffix(m, " -->"), " ")
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "```") {
			t.Fatalf("marker %q is not followed by a code block", line)
		}
		var body strings.Builder
		for sc.Scan() && sc.Text() != "```" {
			body.WriteString(sc.Text() + "\n")
		}
		steps = append(steps, guideStep{kind: kind, arg: arg, body: body.String()})
	}
	return steps
}

// TestBridgeOptionGuide follows the README's guide for a service marked with the bridge's
// option verbatim: a new module beside a checkout of this repository, the replace that lets
// Go find github.com/wsbridge/wsbridge (no proxy serves it), generation, a backend, the
// bridge in front, a create and a retrieve. The test supplies the checkout (a link to this
// repository), buf and the plugins, and starts the server it says to start with `&`.
func TestBridgeOptionGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds buf and a new module")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	steps := readMarked(t, "## Putting it in front of your own gRPC service", "option-guide")
	if len(steps) != 7 {
		t.Fatalf("%d guide steps, want 7", len(steps))
	}
	bin, parent := t.TempDir(), t.TempDir()
	if err := os.Symlink(repo, filepath.Join(parent, "wsbridge")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "GOWORK=off", "GOFLAGS=-mod=mod")
	run := func(wd string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir, cmd.Env = wd, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(repo, "go", "build", "-modfile=tools.mod", "-o", bin, "github.com/bufbuild/buf/cmd/buf")
	run(repo, "go", "build", "-o", bin, "google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc")

	// The first block makes books/ and goes there; the others run in it.
	wd, dir := parent, filepath.Join(parent, "books")
	var frames []string
	for _, st := range steps {
		switch st.kind {
		case "file":
			path := filepath.Join(dir, filepath.FromSlash(st.arg))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(st.body), 0o644); err != nil {
				t.Fatal(err)
			}
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

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	srv := exec.Command(filepath.Join(dir, "books-server"))
	srv.Env = append(env, "BOOKS_ADDR="+addr)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })

	c := newEnvFor(t, &backend{t: t, addr: addr}).dial()
	if len(frames) != 2 {
		t.Fatalf("guide frames %q", frames)
	}
	c.sendRaw(frames[0])
	f := c.next()
	wantStatus(t, f, 201)
	if f.data()["id"] != "1" || f.data()["title"] != "Dune" {
		t.Fatalf("create: %s", f.raw)
	}
	c.sendRaw(frames[1])
	f = c.next()
	wantStatus(t, f, 200)
	if f.data()["title"] != "Dune" {
		t.Fatalf("retrieve: %s", f.raw)
	}
}
