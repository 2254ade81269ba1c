// Package bridge puts a WebSocket API in the channels-api protocol (Django's
// channels-api and djangochannelsrestframework) in front of gRPC backends. A program
// embedding it creates a [Server] with [New] and options, serves it as an http.Handler
// (/ws, /healthz, /readyz, /metrics, /schema) and stops it with [Server.Shutdown].
//
// # The way a frame travels
//
// Each step is one file; read them in this order:
//
//   - server.go: the handshake (origin, connection limit and credentials: guard.go, auth.go)
//     makes a conn; gorilla/websocket does the upgrade and nothing after it.
//   - conn.go: the connection's read loop reads each frame into a pooled buffer, with the
//     bridge's own frame reader (wsread.go), and waits for input on a fresh goroutine.
//   - call.go: dispatch decodes the frame once (request.go, with the scanner of jsonscan.go)
//     into a request that every later step reads; the rate limit (guard.go) and route follow:
//     the stream's resource in the current catalog, its permission (permission.go), then
//     subscribe and unsubscribe (subscribe.go) or a unary call on a pooled call worker.
//   - transcode.go (aip.go for AIP-style services): the request's protobuf wire bytes, from
//     the request, by internal/wirejson (protojson and dynamicpb for the messages it does
//     not support).
//   - call.go: the gRPC call with a raw-bytes codec, the connection's context and the call
//     deadline.
//   - reply.go: the reply frame, from the response's wire bytes or the error (error.go).
//   - conn.go: the reply is queued, and a pooled writer goroutine writes it, with the other frames queued, in one write.
//
// Subscriptions take a side door: subscribe.go keeps each connection's subscriptions and
// shares one upstream Subscribe stream among identical ones; upstream.go opens, pumps and
// reopens that stream (with the backoff of backoff.go) and fans each event out, encoded once
// (reply.go), to every subscriber's queue. resume.go keeps each upstream's position for
// offsets and resume: data.since, catch-up upstreams, reopening without loss.
//
// The catalog (catalog.go), built by discovery (discover.go) from reflection or a descriptor
// set, with HTTP rules (httprule.go) and AIP names (aip.go), holds everything a request
// needs resolved once, permissions included; a new catalog replaces the old one in a
// single atomic store. docs/architecture.md draws the same path.
package bridge
