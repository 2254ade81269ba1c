package e2e_test

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/library/library"
)

// libraryRules is the example's grpc-gateway configuration, as the bridge's -http-rules takes it.
const libraryRules = "../proto/library/v1/library_http.yaml"

// newLibraryEnv starts the AIP-style library backend and a bridge in front of it.
func newLibraryEnv(t *testing.T, opts ...bridge.Option) *env {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := library.Start(library.Config{GRPCListener: lis, DBPath: filepath.Join(t.TempDir(), "library.db"), Logger: quiet})
	if err != nil {
		t.Fatalf("start library: %v", err)
	}
	t.Cleanup(srv.Stop)
	b := &backend{t: t, addr: lis.Addr().String()}
	return newEnvFor(t, b, opts...)
}

// withLibraryRules is the bridge option of -http-rules with the example's file.
func withLibraryRules(t *testing.T) bridge.Option {
	t.Helper()
	rules, err := bridge.LoadHTTPRules(libraryRules)
	if err != nil {
		t.Fatal(err)
	}
	return bridge.WithHTTPRules(rules)
}
