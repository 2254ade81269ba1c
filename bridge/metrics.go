package bridge

import (
	"fmt"
	"net/http"
	"runtime"
)

// Stats are the bridge's gauges at one moment.
type Stats struct {
	// Connections is the number of open WebSocket connections.
	Connections int
	// Subscriptions is the number of client subscriptions, confirmed or waiting.
	Subscriptions int
	// UpstreamStreams is the number of established upstream Subscribe streams; identical
	// subscriptions share one.
	UpstreamStreams int
}

// Stats reports the bridge's gauges. It reads counters only, without the hub's lock, so a
// scrape never holds up the fan-out of events.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:     int(s.nconns.Load()),
		Subscriptions:   int(s.hub.subs.Load()),
		UpstreamStreams: int(s.hub.live.Load()),
	}
}

// serveMetrics writes the gauges in the Prometheus text format.
func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	st := s.Stats()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP wsbridge_connections Open WebSocket connections.\n# TYPE wsbridge_connections gauge\nwsbridge_connections %d\n", st.Connections)
	fmt.Fprintf(w, "# HELP wsbridge_subscriptions Client subscriptions.\n# TYPE wsbridge_subscriptions gauge\nwsbridge_subscriptions %d\n", st.Subscriptions)
	fmt.Fprintf(w, "# HELP go_goroutines Goroutines of the bridge process: flat when connections are; growth is a leak.\n# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
	fmt.Fprintf(w, "# HELP wsbridge_upstream_streams Upstream Subscribe streams, shared by identical subscriptions.\n# TYPE wsbridge_upstream_streams gauge\nwsbridge_upstream_streams %d\n", st.UpstreamStreams)
}
