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

// guideStep is one marked block of the README's own-service guide.
type guideStep struct {
	kind string // "run", "file" or "frames"
	arg  string // the file's path for "file"
	body string
}

// readGuide returns the marked blocks of the README section, in order.
func readGuide(t *testing.T) []guideStep {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "## A new service from an empty directory")
	if !ok {
		t.Fatal("README has no own-service guide")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var steps []guideStep
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		marker, ok := strings.CutPrefix(line, "<!-- guide: ")
		if !ok {
			continue
		}
		kind, arg, _ := strings.Cut(strings.TrimSuffix(marker, " -->"), " ")
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "```") {
			t.Fatalf("guide marker %q is not followed by a code block", line)
		}
		var body strings.Builder
		for sc.Scan() && sc.Text() != "```" {
			body.WriteString(sc.Text() + "\n")
		}
		steps = append(steps, guideStep{kind: kind, arg: arg, body: body.String()})
	}
	if len(steps) < 5 {
		t.Fatalf("only %d guide steps", len(steps))
	}
	return steps
}

// TestOwnServiceGuide follows the README's guide verbatim in an empty directory: a new
// module, its AIP-style proto, buf lint and generate with buf's default rules (but the two
// the guide names), a backend, the bridge in front, a create and a retrieve over the
// WebSocket. Installing tools, mkdir/cd and starting the server in the background are done by
// the test itself: the tools come from this repository's pinned versions.
func TestOwnServiceGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds buf and a new module")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	dir := t.TempDir()
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

	var frames []string
	for _, st := range readGuide(t) {
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

	// The server the guide starts with `./books-server &`, on a free port.
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
	if f.data()["name"] != "books/1" || f.data()["title"] != "Dune" {
		t.Fatalf("create: %s", f.raw)
	}
	c.sendRaw(frames[1])
	f = c.next()
	wantStatus(t, f, 200)
	if f.data()["title"] != "Dune" {
		t.Fatalf("retrieve: %s", f.raw)
	}
}
