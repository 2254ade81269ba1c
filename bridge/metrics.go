package bridge

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	// QueuedBytes is the number of bytes waiting in the connections' outbound queues.
	QueuedBytes int
}

// Stats reports the bridge's gauges. It reads counters only, without the hub's lock, so a
// scrape never holds up the fan-out of events.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:     int(s.nconns.Load()),
		Subscriptions:   int(s.hub.subs.Load()),
		UpstreamStreams: int(s.hub.live.Load()),
		QueuedBytes:     int(s.metrics.queued.Load()),
	}
}

// unknownLabel is the stream or action label of a frame whose stream or action is not in
// the catalog: labels come from the catalog only, so a client cannot create series.
const unknownLabel = "unknown"

// noReplyLabel is the status label of a request whose connection ended before its reply.
const noReplyLabel = "none"

// metrics are one Server's Prometheus collectors, in a registry of its own: a program may
// run several servers, and tests create many.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // stream, action, status
	latency  *prometheus.HistogramVec // stream, action
	events   *prometheus.CounterVec   // stream
	reopens  *prometheus.CounterVec   // stream
	closes   *prometheus.CounterVec   // code
	refusals *prometheus.CounterVec   // reason
	queued   atomic.Int64             // bytes in every outbound queue (conn.send, writeLoop)

	// Each label set's counter and histogram, looked up once: WithLabelValues hashes the
	// labels and takes the vector's lock, on every request. The label sets are bounded by
	// the catalog (unknownLabel for the rest) and the statuses.
	reqSeries sync.Map // requestLabels → requestSeries
}

type requestLabels struct {
	stream, action string
	status         int
}

// requestSeries are the series a request with given labels counts in.
type requestSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer // shared by the statuses of a stream and action
}

// requestDone counts a request that ended with status after elapsed seconds.
func (m *metrics) requestDone(stream, action string, status int, elapsed float64) {
	k := requestLabels{stream, action, status}
	v, ok := m.reqSeries.Load(k)
	if !ok {
		v, _ = m.reqSeries.LoadOrStore(k, requestSeries{
			count:   m.requests.WithLabelValues(stream, action, statusLabel(status)),
			latency: m.latency.WithLabelValues(stream, action),
		})
	}
	rs := v.(requestSeries)
	rs.count.Inc()
	rs.latency.Observe(elapsed)
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_requests_total",
		Help: "Request frames answered, by stream, action and response_status (status \"none\": the connection ended first).",
	}, []string{"stream", "action", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wsbridge_request_duration_seconds",
		Help:    "Time from reading a request frame to queueing its reply.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"stream", "action"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_events_delivered_total",
		Help: "Event frames queued to subscribers (one per subscriber and event).",
	}, []string{"stream"})
	m.reopens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_upstream_reconnects_total",
		Help: "Upstream Subscribe streams that broke or failed to open and are being opened again.",
	}, []string{"stream"})
	m.closes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_closes_total",
		Help: "Connections the bridge closed, by close code (4008: slow consumer, 4001: token expired, 1001: shutdown, 1009: frame too big, 1003: binary frame).",
	}, []string{"code"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_handshake_refusals_total",
		Help: "Refused WebSocket handshakes, by reason (origin, credentials, connections, draining).",
	}, []string{"reason"})
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	// The gauges read atomic counters at scrape time: no lock the fan-out takes.
	m.reg.MustRegister(
		m.requests, m.latency, m.events, m.reopens, m.closes, m.refusals,
		gauge("wsbridge_connections", "Open WebSocket connections.", func() int { return int(s.nconns.Load()) }),
		gauge("wsbridge_subscriptions", "Client subscriptions.", func() int { return int(s.hub.subs.Load()) }),
		gauge("wsbridge_upstream_streams", "Upstream Subscribe streams, shared by identical subscriptions.", func() int { return int(s.hub.live.Load()) }),
		gauge("wsbridge_outbound_queue_bytes", "Bytes waiting in the connections' outbound queues.", func() int { return int(m.queued.Load()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Closes by the codes the bridge sends exist from the start, at 0, so that an alert on
	// rate(wsbridge_closes_total{code="4008"}) has a series before the first slow consumer.
	for _, code := range []int{1001, 1003, 1009, CloseTokenExpired, CloseSlowConsumer} {
		m.closes.WithLabelValues(strconv.Itoa(code))
	}
	for _, r := range []string{refusedOrigin, refusedCredentials, refusedLimit, refusedDraining} {
		m.refusals.WithLabelValues(r)
	}
	return m
}

// Registry is the Prometheus registry /metrics serves: a program embedding the bridge may
// register its own collectors in it.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// serveMetrics serves the registry in the Prometheus text format (or OpenMetrics, when
// the scraper asks for it).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}

func newMetricsHandler(m *metrics) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// statusLabels are the status labels of every possible response_status, made once.
var statusLabels = func() (l [600]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return
}()

func statusLabel(status int) string {
	if status <= 0 || status >= len(statusLabels) {
		return noReplyLabel
	}
	return statusLabels[status]
}

// eventsDelivered counts n event frames queued to the subscribers of stream (upstream.go).
func (m *metrics) eventsDelivered(stream string, n int) {
	if n > 0 {
		m.events.WithLabelValues(stream).Add(float64(n))
	}
}

// upstreamReopen counts an upstream of stream being opened again (upstream.go).
func (m *metrics) upstreamReopen(stream string) { m.reopens.WithLabelValues(stream).Inc() }

// closed counts a close frame the bridge sent (conn.go).
func (m *metrics) closed(code int) { m.closes.WithLabelValues(statusLabelOrCode(code)).Inc() }

func statusLabelOrCode(code int) string {
	if code > 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// refused counts a refused handshake (refusal.go).
func (m *metrics) refused(reason string) { m.refusals.WithLabelValues(reason).Inc() }
