package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jhump/protoreflect/v2/grpcreflect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// backendConn is a dialed backend.
type backendConn struct {
	cfg  Backend
	conn *grpc.ClientConn
	sc   *serviceConfig // dial.go
}

// infrastructure services are never resources, whatever the configuration says.
func isInfrastructure(name protoreflect.FullName) bool {
	return strings.HasPrefix(string(name), "grpc.reflection.") || strings.HasPrefix(string(name), "grpc.health.")
}

// discover builds the catalog from the descriptor set, or else from each backend's reflection.
func (s *Server) discover(ctx context.Context) (*catalog, error) {
	var sources []serviceSource
	if s.opts.descriptors != nil {
		var err error
		if sources, err = s.sourcesFromDescriptors(); err != nil {
			return nil, err
		}
	} else {
		for _, b := range s.backends {
			srcs, err := s.reflect(ctx, b)
			if err != nil {
				return nil, fmt.Errorf("backend %s: %w", b.cfg.Target, err)
			}
			sources = append(sources, srcs...)
		}
	}
	for svc := range s.opts.streams {
		found := false
		for _, src := range sources {
			found = found || string(src.desc.FullName()) == svc || servesResource(src.desc, svc, s.opts.httpRules)
		}
		if !found {
			return nil, fmt.Errorf("service %s named in the configuration was not found on any backend", svc)
		}
	}
	return buildCatalogWith(sources, catalogConfig{rules: s.opts.httpRules, streams: s.opts.streams, access: accessConfig{
		policy: s.opts.security.policy, custom: s.opts.security.permissions, logger: s.opts.logger,
	}})
}

func (s *Server) reflect(ctx context.Context, b *backendConn) ([]serviceSource, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := grpcreflect.NewClientAuto(ctx, b.conn)
	defer client.Reset()
	names, err := client.ListServices()
	if err != nil {
		return nil, fmt.Errorf("server reflection: %w", reflectionError(err))
	}
	var out []serviceSource
	for _, name := range names {
		if isInfrastructure(name) {
			continue
		}
		fd, err := client.FileContainingSymbol(name)
		if err != nil {
			return nil, fmt.Errorf("server reflection: %s: %w", name, err)
		}
		sd := fd.Services().ByName(name.Name())
		if sd == nil {
			return nil, fmt.Errorf("server reflection: %s missing from its file %s", name, fd.Path())
		}
		out = append(out, serviceSource{desc: sd, conn: b.conn, stream: s.opts.streams[string(name)]})
	}
	return out, nil
}

func (s *Server) sourcesFromDescriptors() ([]serviceSource, error) {
	var out []serviceSource
	var err error
	s.opts.descriptors.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			sd := svcs.Get(i)
			if isInfrastructure(sd.FullName()) {
				continue
			}
			stream := s.opts.streams[string(sd.FullName())]
			if stream == "" && resourceOptions(sd) == nil && !isAIPService(sd, s.opts.httpRules) {
				continue
			}
			b := s.backendFor(sd.FullName())
			if b == nil {
				err = fmt.Errorf("no backend lists service %s", sd.FullName())
				return false
			}
			out = append(out, serviceSource{desc: sd, conn: b.conn, stream: stream})
		}
		return true
	})
	return out, err
}

func (s *Server) backendFor(name protoreflect.FullName) *backendConn {
	if len(s.backends) == 1 {
		return s.backends[0]
	}
	for _, b := range s.backends {
		for _, svc := range b.cfg.Services {
			if svc == string(name) {
				return b
			}
		}
	}
	return nil
}

// discoverLoop retries discovery until it succeeds, then, with a refresh interval,
// discovers again on that interval and swaps in the new catalog, until the server closes.
func (s *Server) discoverLoop(ctx context.Context) {
	defer close(s.loopDone)
	if !s.discoverUntilReady(ctx) {
		return
	}
	if s.opts.refresh <= 0 {
		return
	}
	t := time.NewTicker(s.opts.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cat, err := s.discover(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.opts.logger.Warn("refreshing the catalog failed; keeping the current one", "err", err)
			}
			continue
		}
		s.install(cat)
	}
}

func (s *Server) discoverUntilReady(ctx context.Context) bool {
	defer close(s.discovered)
	// The same backoff as upstream reconnects (backoff.go), up to the retry option.
	backoff := newBackoff(s.opts.discoveryRetry/8, s.opts.discoveryRetry)
	var hints discoveryHints
	for {
		cat, err := s.discover(ctx)
		if err == nil {
			s.install(cat)
			s.opts.logger.Info("backends discovered", "streams", cat.names())
			s.warnNoStreams(cat)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.hintDiscovery(&hints, err)
		delay := backoff.NextBackOff()
		s.opts.logger.Warn("discovery failed, retrying", "err", err, "in", delay)
		if !sleep(ctx, delay) {
			return false
		}
	}
}

// install swaps in a new catalog: one store, since everything it holds was resolved when it
// was built. Requests already under way, and upstream subscriptions, keep the resources they
// started with.
func (s *Server) install(cat *catalog) {
	s.applyRetryPolicies(cat) // dial.go
	s.catalog.Store(cat)
	s.checkPolicy(cat) // config.go
}

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
