package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// Every client makes the same two calls and checks the answer the same way: a retrieve must
// return the question asked for, a create must return a question with an id. The REST and
// WebSocket clients decode the JSON they get as a browser would.

// questionText is the text of every question created during the run.
const questionText = "Which transport is fastest?"

// pkFor is the question a worker retrieves on its i-th call.
func pkFor(pks []int64, worker, i int) int64 { return pks[(worker*7+i)%len(pks)] }

// --- gRPC: one grpc.ClientConn (one HTTP/2 connection) shared by every worker.

type grpcClient struct {
	conn *grpc.ClientConn
	q    pollsv1.QuestionServiceClient
}

func newGRPCClient(addr string) (*grpcClient, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &grpcClient{conn: cc, q: pollsv1.NewQuestionServiceClient(cc)}, nil
}

func (g *grpcClient) close() { _ = g.conn.Close() }

func (g *grpcClient) create(ctx context.Context, text string) (int64, error) {
	q, err := g.q.Create(ctx, &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{QuestionText: text}})
	if err != nil {
		return 0, err
	}
	if q.GetId() == 0 {
		return 0, errors.New("create returned no id")
	}
	return q.GetId(), nil
}

func (g *grpcClient) op(call string, pks []int64) opFunc {
	if call == "create" {
		return func(ctx context.Context, _, _ int) error {
			_, err := g.create(ctx, questionText)
			return err
		}
	}
	return func(ctx context.Context, worker, i int) error {
		pk := pkFor(pks, worker, i)
		q, err := g.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: pk})
		if err != nil {
			return err
		}
		if q.GetId() != pk {
			return fmt.Errorf("retrieve %d returned question %d", pk, q.GetId())
		}
		return nil
	}
}

// --- REST: HTTP/1.1 with keep-alive, one idle connection kept per worker.

type restClient struct {
	base string
	http *http.Client
}

func newRESTClient(base string, conns int) *restClient {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &restClient{base: base, http: &http.Client{Transport: tr}}
}

func (r *restClient) close() { r.http.CloseIdleConnections() }

// question is the part of a question's JSON the clients check; int64 ids are JSON strings.
type question struct {
	ID string `json:"id"`
}

func (r *restClient) do(req *http.Request, want int) (question, error) {
	var q question
	resp, err := r.http.Do(req)
	if err != nil {
		return q, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return q, err
	}
	if resp.StatusCode != want {
		return q, fmt.Errorf("%s %s: HTTP %d: %.200s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &q); err != nil {
		return q, err
	}
	return q, nil
}

func (r *restClient) op(call string, pks []int64) opFunc {
	if call == "create" {
		body := []byte(`{"question_text":` + strconv.Quote(questionText) + `}`)
		url := r.base + "/v1/questions"
		return func(ctx context.Context, _, _ int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			q, err := r.do(req, http.StatusOK)
			if err == nil && q.ID == "" {
				err = errors.New("create returned no id")
			}
			return err
		}
	}
	return func(ctx context.Context, worker, i int) error {
		pk := strconv.FormatInt(pkFor(pks, worker, i), 10)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/v1/questions/"+pk, nil)
		if err != nil {
			return err
		}
		q, err := r.do(req, http.StatusOK)
		if err == nil && q.ID != pk {
			err = fmt.Errorf("retrieve %s returned question %q", pk, q.ID)
		}
		return err
	}
}

// --- WebSocket: a few connections to the bridge, each carrying many requests at once
// (pipelined, answered in any order, matched by request_id), as a browser app uses it.

type wsClient struct {
	conns []*wsConn
}

type wsConn struct {
	ws  *websocket.Conn
	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	pending map[uint64]chan<- wsReply
	nextID  uint64
	err     error // set once the connection failed; no request is pending after
	done    chan struct{}
}

type wsReply struct {
	status int
	id     string
	err    error
}

// wsFrame is the part of a reply frame the client reads.
type wsFrame struct {
	Payload struct {
		RequestID      uint64          `json:"request_id"`
		ResponseStatus int             `json:"response_status"`
		Data           question        `json:"data"`
		Errors         json.RawMessage `json:"errors"`
	} `json:"payload"`
}

func newWSClient(url string, n int) (*wsClient, error) {
	c := &wsClient{}
	for i := 0; i < n; i++ {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			c.close()
			return nil, err
		}
		wc := &wsConn{ws: ws, pending: map[uint64]chan<- wsReply{}, done: make(chan struct{})}
		go wc.read()
		c.conns = append(c.conns, wc)
	}
	return c, nil
}

func (c *wsClient) close() {
	for _, wc := range c.conns {
		_ = wc.ws.Close()
		<-wc.done
	}
}

func (wc *wsConn) read() {
	defer close(wc.done)
	for {
		_, b, err := wc.ws.ReadMessage()
		if err == nil {
			var f wsFrame
			if err = json.Unmarshal(b, &f); err == nil {
				r := wsReply{status: f.Payload.ResponseStatus, id: f.Payload.Data.ID}
				if r.status >= 300 {
					r.err = fmt.Errorf("response_status %d: %s", r.status, f.Payload.Errors)
				}
				// The send never blocks: a channel has one request pending at a time.
				wc.mu.Lock()
				ch := wc.pending[f.Payload.RequestID]
				delete(wc.pending, f.Payload.RequestID)
				if ch != nil {
					ch <- r
				}
				wc.mu.Unlock()
				if ch != nil {
					continue
				}
				err = fmt.Errorf("reply to unknown request_id %d: %.200s", f.Payload.RequestID, b)
			}
		}
		wc.mu.Lock()
		wc.err = err
		for id, ch := range wc.pending {
			ch <- wsReply{err: err}
			delete(wc.pending, id)
		}
		wc.mu.Unlock()
		return
	}
}

// roundTrip sends a request frame built by frame (given the request_id) and waits for its
// reply on ch, which the caller owns (capacity 1).
func (wc *wsConn) roundTrip(ctx context.Context, ch chan wsReply, buf *[]byte, frame func(b []byte, id uint64) []byte) wsReply {
	wc.mu.Lock()
	if wc.err != nil {
		err := wc.err
		wc.mu.Unlock()
		return wsReply{err: err}
	}
	wc.nextID++
	id := wc.nextID
	wc.pending[id] = ch
	wc.mu.Unlock()

	*buf = frame((*buf)[:0], id)
	wc.wmu.Lock()
	err := wc.ws.WriteMessage(websocket.TextMessage, *buf)
	wc.wmu.Unlock()
	if err != nil {
		_ = wc.ws.Close() // the reader fails every pending request, this one included
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		// Abandoned: forget the request and any reply that just came, so that ch is clean.
		wc.mu.Lock()
		delete(wc.pending, id)
		select {
		case <-ch:
		default:
		}
		wc.mu.Unlock()
		return wsReply{err: ctx.Err()}
	}
}

// wsWorker is one worker's reusable state.
type wsWorker struct {
	ch  chan wsReply
	buf []byte
}

func (c *wsClient) op(call string, pks []int64) opFunc {
	var mu sync.Mutex
	workers := map[int]*wsWorker{}
	state := func(w int) *wsWorker {
		mu.Lock()
		defer mu.Unlock()
		s := workers[w]
		if s == nil {
			s = &wsWorker{ch: make(chan wsReply, 1), buf: make([]byte, 0, 256)}
			workers[w] = s
		}
		return s
	}
	conn := func(w int) *wsConn { return c.conns[w%len(c.conns)] }

	if call == "create" {
		head := []byte(`{"stream":"questions","payload":{"action":"create","data":{"question_text":` + strconv.Quote(questionText) + `},"request_id":`)
		return func(ctx context.Context, worker, _ int) error {
			s := state(worker)
			r := conn(worker).roundTrip(ctx, s.ch, &s.buf, func(b []byte, id uint64) []byte {
				return append(strconv.AppendUint(append(b, head...), id, 10), "}}"...)
			})
			switch {
			case r.err != nil:
				return r.err
			case r.status != http.StatusCreated:
				return fmt.Errorf("create: response_status %d", r.status)
			case r.id == "":
				return errors.New("create returned no id")
			}
			return nil
		}
	}
	head := []byte(`{"stream":"questions","payload":{"action":"retrieve","pk":`)
	return func(ctx context.Context, worker, i int) error {
		s := state(worker)
		pk := pkFor(pks, worker, i)
		r := conn(worker).roundTrip(ctx, s.ch, &s.buf, func(b []byte, id uint64) []byte {
			b = strconv.AppendInt(append(b, head...), pk, 10)
			b = strconv.AppendUint(append(b, `,"request_id":`...), id, 10)
			return append(b, "}}"...)
		})
		switch {
		case r.err != nil:
			return r.err
		case r.status != http.StatusOK:
			return fmt.Errorf("retrieve: response_status %d", r.status)
		case r.id != strconv.FormatInt(pk, 10):
			return fmt.Errorf("retrieve %d returned question %q", pk, r.id)
		}
		return nil
	}
}
