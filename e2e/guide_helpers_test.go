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

// guideStep is one marked block of a README guide.
type guideStep struct {
	kind string // "run", "file" or "frames"
	arg  string // the file's path for "file"
	body string
}

// readMarked returns the blocks of the README section whose heading line starts with
// heading that follow a "<!-- marker: kind [arg] -->" line, in order.
func readMarked(t *testing.T, heading, marker string) []guideStep {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n"+heading)
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

// guideTools builds buf and the Go plugins at this repository's pinned versions into a
// directory put first on PATH, and returns that environment and a command runner that
// fails the test on error.
func guideTools(t *testing.T) (repo string, env []string, run func(wd string, args ...string)) {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "GOWORK=off", "GOFLAGS=-mod=mod")
	run = func(wd string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir, cmd.Env = wd, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(repo, "go", "build", "-modfile=tools.mod", "-o", bin, "github.com/bufbuild/buf/cmd/buf")
	run(repo, "go", "build", "-o", bin, "google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc")
	return repo, env, run
}

// writeGuideFile writes a "file" block under dir.
func writeGuideFile(t *testing.T, dir string, st guideStep) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(st.arg))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(st.body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkGuideBooks starts the books-server the guide built (it says to start it with `&`)
// on a free port, puts the bridge in front, and sends the guide's two frames: the create
// must answer 201 with the book's key field set to key, the retrieve 200 with the title.
func checkGuideBooks(t *testing.T, dir string, env, frames []string, keyField, key string) {
	t.Helper()
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
	if f.data()[keyField] != key || f.data()["title"] != "Dune" {
		t.Fatalf("create: %s", f.raw)
	}
	c.sendRaw(frames[1])
	f = c.next()
	wantStatus(t, f, 200)
	if f.data()["title"] != "Dune" {
		t.Fatalf("retrieve: %s", f.raw)
	}
}
