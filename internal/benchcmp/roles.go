package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
	"github.com/wsbridge/wsbridge/internal/gcfloor"
	"github.com/wsbridge/wsbridge/internal/proc"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// The backend, the bridge and the grpc-gateway proxy each run in a process of their own, so
// that each one's CPU time can be read from /proc: this program starts itself again with
// roleEnv naming the part to play.
const (
	roleEnv    = "WSBRIDGE_BENCH_ROLE"
	profileEnv = "WSBRIDGE_BENCH_CPUPROFILE" // the bridge role's CPU profile, of its whole life
)

// runRole serves one part until SIGTERM and returns the exit status.
func runRole(role string, args []string) int {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	listen := fs.String("listen", "", "address to serve on (the backend's gRPC address)")
	httpAddr := fs.String("http", "", "backend: its REST address")
	db := fs.String("db", "", "backend: SQLite file")
	backend := fs.String("backend", "", "bridge, gwproxy: the backend's gRPC address")
	inflight := fs.Int("max-in-flight", 64, "bridge: requests per connection")
	gcFloor := fs.Int("gc-floor-mib", gcfloor.Default>>20, "bridge: its heap floor, as the bridge command's -gc-floor-mib")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch role {
	case "backend":
		err = serveBackend(ctx, *listen, *httpAddr, *db)
	case "bridge":
		// As the bridge command does; the gateway proxy runs as grpc-gateway ships, with GOGC.
		defer gcfloor.Start(uint64(*gcFloor) << 20)()
		err = serveBridge(ctx, *listen, *backend, *inflight)
	case "gwproxy":
		err = serveGateway(ctx, *listen, *backend)
	default:
		err = fmt.Errorf("unknown %s %q", roleEnv, role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		return 1
	}
	return 0
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func serveBackend(ctx context.Context, grpcAddr, httpAddr, db string) error {
	glis, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return err
	}
	hlis, err := net.Listen("tcp", httpAddr)
	if err != nil {
		glis.Close()
		return err
	}
	srv, err := polls.Start(ctx, polls.Config{GRPCListener: glis, HTTPListener: hlis, DBPath: db, Logger: quiet})
	if err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.GracefulStop(sctx)
}

func serveBridge(ctx context.Context, addr, backend string, inflight int) error {
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b, err := bridge.New(
		bridge.WithBackend(bridge.Backend{Target: backend}),
		bridge.WithLogger(quiet),
		bridge.WithDiscoveryRetry(200*time.Millisecond),
		bridge.WithMaxInFlight(inflight),
		// The per-connection rate limit (default 100 messages/s) protects the bridge from
		// one abusive browser; a load test from a trusted client measures without it.
		bridge.WithRateLimit(0, 0),
	)
	if err != nil {
		return err
	}
	return serveHTTP(ctx, addr, b, func(sctx context.Context) error { return b.Shutdown(sctx) })
}

// serveGateway is grpc-gateway as a proxy: the backend's REST routes and JSON options,
// calling the backend over one gRPC connection as the bridge does.
func serveGateway(ctx context.Context, addr, backend string) error {
	cc, err := grpc.NewClient(backend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	mux := gwruntime.NewServeMux(gwruntime.WithMarshalerOption(gwruntime.MIMEWildcard, &gwruntime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}))
	if err := pollsv1.RegisterQuestionServiceHandler(ctx, mux, cc); err != nil {
		return err
	}
	return serveHTTP(ctx, addr, mux, nil)
}

func serveHTTP(ctx context.Context, addr string, h http.Handler, shutdown func(context.Context) error) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if shutdown != nil {
		_ = shutdown(sctx)
	}
	return hs.Shutdown(sctx)
}

// startRole starts this program again in role.
func startRole(dir, role string, env []string, args ...string) (*proc.Proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return proc.StartLogged(dir, role, append([]string{roleEnv + "=" + role}, env...), self, args...)
}

// stopRole asks the part to finish (SIGTERM) and kills it after 15 s.
func stopRole(p *proc.Proc) { p.Stop(syscall.SIGTERM, 15*time.Second) }

// waitFor polls ok until it is true, the part exits or 60 s pass. A part that exits shows
// the start of its log: the log's directory is removed at the end.
func waitFor(p *proc.Proc, what string, ok func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch err := p.Until(ctx, 20*time.Millisecond, ok); {
	case err == nil:
		return nil
	case errors.Is(err, proc.ErrExited):
		log, _ := os.ReadFile(p.Log)
		return fmt.Errorf("%s exited before %s: %v: %.500s", p.Name, what, p.Err(), log)
	default:
		return fmt.Errorf("%s: no %s after 60s", p.Name, what)
	}
}

// cpuOf is the CPU time process pid has used so far (0: this process); 0 where there
// is no /proc.
func cpuOf(pid int) time.Duration {
	d, _ := proc.CPU(pid)
	return d
}
