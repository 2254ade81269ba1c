package bridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jhump/protoreflect/v2/grpcreflect"
	"google.golang.org/grpc"
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
func (s *Server) discover(ctx context.Context) (*Catalog, error) {
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
	return buildCatalogWith(sources, catalogConfig{rules: s.opts.httpRules, streams: s.opts.streams})
}

func (s *Server) reflect(ctx context.Context, b *backendConn) ([]serviceSource, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := grpcreflect.NewClientAuto(ctx, b.conn)
	defer client.Reset()
	names, err := client.ListServices()
	if err != nil {
		return nil, fmt.Errorf("server reflection: %w", reflectionError(err)) // discover_hint.go
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
	delay := s.opts.discoveryRetry / 8
	var hints discoveryHints // discover_hint.go
	for {
		cat, err := s.discover(ctx)
		if err == nil {
			s.install(cat)
			s.opts.logger.Info("backends discovered", "streams", cat.Resources())
			s.warnNoStreams(cat)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.hintDiscovery(&hints, err)
		s.opts.logger.Warn("discovery failed, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, s.opts.discoveryRetry)
	}
}

// install swaps in a new catalog. Requests already under way, and upstream subscriptions,
// keep the resources they started with.
func (s *Server) install(cat *Catalog) {
	s.applyRetryPolicies(cat) // dial.go
	s.catalog.Store(cat)
	s.sec.access.Clear() // permissions are cached per resource of the old catalog
	s.checkPolicy(cat)   // config.go
}
