package bridge

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/wsbridge/wsbridge/internal/wirejson"
)

// inFrame is a frame read and its decoded request, pooled together: the request's raw
// fields are slices of the frame.
type inFrame struct {
	buf bytes.Buffer
	req request
}

var inFramePool = sync.Pool{New: func() any { return new(inFrame) }}

func (f *inFrame) release() {
	if f.buf.Cap() <= 64<<10 {
		f.req = request{}
		inFramePool.Put(f)
	}
}

// dispatch handles one frame read by the read loop: it is decoded once, here, and every
// later step reads the decoded request. Everything that is purely local, subscribe and
// unsubscribe included, runs here, so the frames of a connection take effect in the order
// they were received; only backend calls run on goroutines of their own. It reports false
// when the connection ended while waiting for a request slot.
func (c *conn) dispatch(in *inFrame) bool {
	r := &in.req
	start := time.Now()
	e := r.decode(in.buf.Bytes()) // request.go
	c.begin(r, start)             // tracing.go
	if c.limiter != nil && !c.limiter.Allow() {
		e = errTooManyReqs // guard.go
	}
	res, a := c.route(r, e) // call.go
	if a == nil {
		c.abandoned(r) // unless answered, or moved to its subscription
		in.release()
		return true
	}
	// Backpressure: at the in-flight limit, stop reading until a request finishes.
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		c.abandoned(r)
		in.release()
		return false
	}
	if !c.startReq() {
		// Shutdown is draining this connection: answer here, without starting anything.
		<-c.sem
		c.replyError(r, errShuttingDown)
		in.release()
		return true
	}
	c.srv.calls.run(c.srv.ctx, callJob{c, res, a, in})
	return true
}

// callJob is one backend call of a connection, with the frame it came in.
type callJob struct {
	c   *conn
	res *resource
	a   *action
	in  *inFrame
}

func (j callJob) run() {
	defer func() {
		j.c.abandoned(&j.in.req)
		j.in.release()
		<-j.c.sem
		j.c.endReq()
	}()
	j.c.call(j.res, j.a, &j.in.req)
}

// callWorkers run backend calls on goroutines kept between calls, so that a call's stack
// (gRPC's client is deep) grows once per worker rather than once per request. There are as
// many workers as calls in flight at the busiest moment of the last callIdle; a worker ends
// when no call comes for callIdle, or when the server shuts down.
type callWorkers struct {
	jobs chan callJob // unbuffered: a job goes to a worker that is waiting, or to a new one
}

// callIdle is how long a worker waits for the next call.
const callIdle = 10 * time.Second

func newCallWorkers() callWorkers { return callWorkers{jobs: make(chan callJob)} }

// run starts j on an idle worker, or on a new one.
func (w callWorkers) run(ctx context.Context, j callJob) {
	select {
	case w.jobs <- j:
	default:
		go w.work(ctx, j)
	}
}

func (w callWorkers) work(ctx context.Context, j callJob) {
	// The timer is not reset after every call (a timer update each): when it fires, a
	// worker that had a call meanwhile sets it again for the rest of callIdle.
	idle := time.NewTimer(callIdle)
	defer idle.Stop()
	for {
		j.run()
		last := time.Now()
	wait:
		select {
		case j = <-w.jobs:
		case <-idle.C:
			if left := callIdle - time.Since(last); left > 0 {
				idle.Reset(left)
				goto wait
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

// route answers a decoded request on the read loop, or its decoding error e, unless it is a
// backend call: then it returns the resource and action to call. Every frame ends in exactly
// one reply, except when the connection is gone.
func (c *conn) route(r *request, e *errorReply) (*resource, *action) {
	if e != nil {
		c.replyError(r, e)
		return nil, nil
	}
	cat := c.srv.catalog.Load()
	if cat == nil {
		c.replyError(r, errNotReady)
		return nil, nil
	}
	if c.srv.isDraining() {
		c.replyError(r, errShuttingDown)
		return nil, nil
	}
	res := cat.streams[string(unquoted(r.stream))]
	if res == nil {
		c.replyError(r, errUnknownStream)
		return nil, nil
	}
	name := r.name
	// DCRF's subscribe_instance and unsubscribe_instance (docs/protocol.md) are subscribe and
	// unsubscribe to permissions.
	perm := name
	switch name {
	case "subscribe_instance":
		perm = "subscribe"
	case "unsubscribe_instance":
		perm = "unsubscribe"
	}
	// Permissions come before the action lookup: a denied client learns nothing about
	// which actions exist (permission.go).
	if !res.permits(c.identity, perm, r.pk) {
		c.replyError(r, errPermission)
		return nil, nil
	}
	switch name {
	case "subscribe":
		c.srv.hub.subscribe(c, res, r)
		return nil, nil
	case "unsubscribe":
		c.srv.hub.unsubscribe(c, res, r)
		return nil, nil
	case "subscribe_instance":
		c.srv.hub.subscribeInstance(c, res, r)
		return nil, nil
	case "unsubscribe_instance":
		c.srv.hub.unsubscribeInstance(c, res, r)
		return nil, nil
	}
	a := res.actions[name]
	if a == nil {
		c.replyError(r, errInvalidAction)
		return nil, nil
	}
	return res, a
}

// pastDeadline reports whether ctx's deadline has passed. Not ctx.Err(): on a loaded machine
// the timer that sets it can run after the backend's DEADLINE_EXCEEDED has arrived.
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() == context.DeadlineExceeded || ok && !time.Now().Before(dl)
}

// wireCall sends and receives a call's messages as wire bytes (wirejson.Codec).
var wireCall = grpc.ForceCodecV2(wirejson.Codec{})

// call makes the unary gRPC call of an action and replies with its result.
func (c *conn) call(res *resource, a *action, r *request) {
	wb := getBuf()
	defer putBuf(wb)
	req, pg, e := buildRequest(*wb, a, r, c.srv.pages) // transcode.go
	if req.wire != nil {
		*wb = req.wire[:0] // keep the grown buffer
	}
	if e != nil {
		c.replyError(r, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.callContext(c.ctx), c.srv.opts.callTimeout) // tracing.go
	defer cancel()
	if len(c.mdPairs) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, c.mdPairs...)
	}
	var err error
	var resp *dynamicpb.Message
	var wireResp mem.BufferSlice
	if a.wire {
		// The request goes out in a reference-counted buffer: gRPC's writer may still hold
		// it when Invoke returns early (deadline, cancel), so it cannot be the pooled wb.
		out := mem.BufferSlice{mem.Copy(req.wire, mem.DefaultBufferPool())}
		err = res.conn.Invoke(ctx, a.method, out, &wireResp, wireCall)
		out.Free()
		defer wireResp.Free()
	} else {
		resp = dynamicpb.NewMessage(a.resp)
		err = res.conn.Invoke(ctx, a.method, req.msg, resp)
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return // the client is gone; nobody to answer
		}
		if status.Code(err) == codes.DeadlineExceeded && pastDeadline(ctx) {
			// The bridge's own call deadline, reported as a status (by the client, or by
			// the backend enforcing the grpc-timeout it was sent): errorFromCall could not
			// tell it from a backend's own DEADLINE_EXCEEDED.
			err = context.DeadlineExceeded
		}
		c.replyError(r, errorFromCall(err))
		return
	}

	out := getBuf()
	num := c.srv.opts.int64AsNumber
	if a.wire {
		var body []byte
		if len(wireResp) == 1 {
			body = wireResp[0].ReadOnlyData()
		} else {
			body = wireResp.Materialize()
		}
		*out, err = appendWireReply(*out, res, a, body, pg, r.requestID, num) // reply.go
	} else {
		*out, err = appendResponseReply(*out, res, a, resp, pg, r.requestID, num) // reply.go
	}
	if err != nil {
		putBuf(out)
		c.replyError(r, newError(http.StatusBadGateway, "The backend's response could not be encoded: "+err.Error()))
		return
	}
	c.answered(r, replyStatus(a))
	c.reply(out)
}

// replyError answers a request with an error reply.
func (c *conn) replyError(r *request, e *errorReply) {
	out := getBuf()
	*out = appendErrorReply(*out, r, e)
	c.answered(r, e.Status)
	c.reply(out)
}
