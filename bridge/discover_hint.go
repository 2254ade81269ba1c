package bridge

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Discovery problems a new user meets first get one explanation each, not only a retry line.

// discoveryHints remembers which explanations were given during one discovery loop.
type discoveryHints struct {
	noReflection bool
}

// errNoReflection marks a backend that does not serve gRPC server reflection.
var errNoReflection = errors.New("the backend does not serve gRPC server reflection")

// reflectionError explains a failed ListServices: a backend without reflection answers
// Unimplemented (unknown service grpc.reflection.v1alpha.ServerReflection).
func reflectionError(err error) error {
	if status.Code(err) == codes.Unimplemented || strings.Contains(err.Error(), "unknown service grpc.reflection.") {
		return fmt.Errorf("%w: %w", errNoReflection, err)
	}
	return err
}

// hintDiscovery logs, once per discovery loop, what to do about a backend without reflection.
func (s *Server) hintDiscovery(h *discoveryHints, err error) {
	if errors.Is(err, errNoReflection) && !h.noReflection {
		h.noReflection = true
		s.opts.logger.Error("a backend does not serve gRPC server reflection, so the bridge cannot learn its services: " +
			"register it in the backend (Go: reflection.Register(server)) or give the bridge a descriptor set " +
			"(buf build -o set.binpb; -descriptor-set set.binpb)")
	}
}

// warnNoStreams warns when discovery found services but exposes none: the bridge would
// otherwise be ready with nothing to serve and say nothing.
func (s *Server) warnNoStreams(cat *catalog) {
	if len(cat.streams) > 0 {
		return
	}
	s.opts.logger.Warn("no stream is exposed: no service has the bridge's resource option, a -stream, "+
		"or AIP standard methods (GetBook, ListBooks, ...); mark a service with option (bridge.v1.resource) = {stream: \"...\"} "+
		"or name it with -stream pkg.Service=stream",
		"services", cat.hidden)
}
