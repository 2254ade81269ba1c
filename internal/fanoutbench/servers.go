package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/wsbridge/wsbridge/internal/proc"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// jwtSecret signs every connection's token, for the bridge and for Centrifugo alike.
const jwtSecret = "fanout-bench-secret-0123456789abcdef"

// server is one system under test: the bridge with the example backend behind it, or
// Centrifugo.
type server interface {
	name() string
	start(c *config, round int) error
	stop()
	// pids: the server that holds the WebSocket connections, and the backend (0 if none).
	pids() (srv, backend int)
	wsURL() string
	// subscribeFrames are the frames a subscriber sends after the handshake, one reply
	// awaited after each; accepted tells whether a frame is that reply and whether it is
	// a success.
	subscribeFrames(token string) [][]byte
	accepted(step int, frame []byte) (isReply bool, err error)
	// ping is the application-level ping the server sends and the pong to answer it with
	// (nil when the server uses WebSocket pings).
	ping() (ping, pong []byte)
	publish(ctx context.Context, text string) error
	// upstreams is the bridge's upstream Subscribe streams, -1 where that does not apply.
	upstreams() float64
	// extraEnv is set on the server process (the bridge's CPU profile hook).
	cpuProfile(start bool)
}

// token is an HS256 JWT for user sub, valid for a day.
func token(sub string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": sub, "exp": time.Now().Add(24 * time.Hour).Unix()})
	msg := head + "." + enc.EncodeToString(claims)
	m := hmac.New(sha256.New, []byte(jwtSecret))
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}

// --- the bridge in front of the example backend, two processes.

type bridgeServer struct {
	backendProc, bridgeProc *proc.Proc
	cc                      *grpc.ClientConn
	q                       pollsv1.QuestionServiceClient
	pk                      int64
	sub                     []byte
	profile                 string // this round's CPU profile file, if any
}

func (b *bridgeServer) name() string { return "bridge" }

func (b *bridgeServer) start(c *config, round int) error {
	baddr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	db := filepath.Join(c.dir, fmt.Sprintf("fanout-%d.db", round))
	if b.backendProc, err = proc.StartLogged(c.dir, fmt.Sprintf("backend-%d", round), nil, c.backendBin,
		"-grpc-addr", baddr, "-http-addr", "", "-db", db); err != nil {
		return err
	}
	if err := b.backendProc.WaitFor(30*time.Second, "gRPC port open", func() bool { return proc.PortOpen(baddr) }); err != nil {
		return err
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	env := []string{}
	if c.tokens {
		env = append(env, "BRIDGE_JWT_SECRET="+jwtSecret)
	}
	b.profile = ""
	if c.cpuProfile != "" && round == 1 {
		b.profile = c.cpuProfile
		env = append(env, "WSBRIDGE_BENCH_CPUPROFILE="+b.profile)
	}
	if b.bridgeProc, err = proc.StartLogged(c.dir, fmt.Sprintf("bridge-%d", round), env, c.bridgeBin,
		"-listen", addr, "-backend", baddr, "-log-level", "warn",
		"-max-connections", strconv.Itoa(c.subs+100), "-write-delay", c.writeDelay.String()); err != nil {
		return err
	}
	b.bridgeProc.Addr = addr
	if err := b.bridgeProc.WaitFor(60*time.Second, "200 from /readyz", func() bool { return proc.HTTPOK("http://" + addr + "/readyz") }); err != nil {
		return err
	}
	if b.cc, err = grpc.NewClient(baddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	b.q = pollsv1.NewQuestionServiceClient(b.cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := b.q.Create(ctx, &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{QuestionText: "fan-out"}})
	if err != nil {
		return fmt.Errorf("creating the question: %w", err)
	}
	b.pk = q.GetId()
	b.sub = fmt.Appendf(nil, `{"stream":"questions","payload":{"action":"subscribe","pk":%d,"data":{"action":"update"},"request_id":"s"}}`, b.pk)
	return nil
}

func (b *bridgeServer) stop() {
	if b.cc != nil {
		b.cc.Close()
		b.cc = nil
	}
	b.bridgeProc.Stop(syscall.SIGTERM, 15*time.Second)
	b.backendProc.Stop(syscall.SIGTERM, 15*time.Second)
	b.bridgeProc, b.backendProc = nil, nil
}

func (b *bridgeServer) pids() (int, int) { return b.bridgeProc.Pid(), b.backendProc.Pid() }
func (b *bridgeServer) wsURL() string    { return "ws://" + b.bridgeProc.Addr + "/ws" }

func (b *bridgeServer) subscribeFrames(string) [][]byte { return [][]byte{b.sub} }

func (b *bridgeServer) accepted(_ int, f []byte) (bool, error) {
	i := bytes.Index(f, []byte(`"response_status":`))
	if i < 0 {
		return false, nil
	}
	if !bytes.HasPrefix(f[i+len(`"response_status":`):], []byte("200")) {
		return true, fmt.Errorf("subscribe refused: %.300s", f)
	}
	return true, nil
}

func (b *bridgeServer) ping() ([]byte, []byte) { return nil, nil }

func (b *bridgeServer) publish(ctx context.Context, text string) error {
	_, err := b.q.Patch(ctx, &pollsv1.PatchQuestionRequest{
		Pk:         b.pk,
		Data:       &pollsv1.Question{QuestionText: text},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"question_text"}},
	})
	return err
}

func (b *bridgeServer) upstreams() float64 {
	m, err := proc.Metrics(b.bridgeProc.Addr)
	v, ok := m["wsbridge_upstream_streams"]
	if err != nil || !ok {
		return -1
	}
	return v
}

// cpuProfile starts and stops the CPU profile of a bridge built with the profiling hook
// (scripts/bench-fanout -cpuprofile); the file is complete once it has stopped.
func (b *bridgeServer) cpuProfile(start bool) {
	if b.profile == "" {
		return
	}
	if start {
		_ = os.Remove(b.profile)
		b.bridgeProc.Signal(syscall.SIGUSR1)
		return
	}
	b.bridgeProc.Signal(syscall.SIGUSR2)
	err := b.bridgeProc.WaitFor(30*time.Second, "CPU profile "+b.profile, func() bool {
		_, err := os.Stat(b.profile)
		return err == nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-fanout:", err)
		return
	}
	fmt.Fprintln(os.Stderr, "bench-fanout: the bridge's CPU profile is in", b.profile)
}

// --- Centrifugo, one process, memory broker.

type centrifugo struct {
	bin    string
	p      *proc.Proc
	apiKey string
	api    *http.Client
}

const centrifugoChannel = "bench"

func (s *centrifugo) name() string { return "centrifugo" }

func (s *centrifugo) start(c *config, round int) error {
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	host, port, _ := splitHostPort(addr)
	s.apiKey = "fanout-bench-api-key"
	// Centrifugo v6 configuration keys (centrifugo defaultconfig): HMAC tokens, the HTTP API
	// on the same port with a key, a channel without namespace that any connected client
	// may subscribe to; the memory broker is the default.
	cfg := map[string]any{
		"http_server": map[string]any{"address": host, "port": port},
		"log":         map[string]any{"level": "warn"},
		"health":      map[string]any{"enabled": true},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": jwtSecret},
			"allowed_origins": []string{"*"},
		},
		"channel": map[string]any{
			"without_namespace": map[string]any{"allow_subscribe_for_client": true},
		},
		"http_api": map[string]any{"key": s.apiKey},
	}
	path := filepath.Join(c.dir, fmt.Sprintf("centrifugo-%d.json", round))
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	if s.p, err = proc.StartLogged(c.dir, fmt.Sprintf("centrifugo-%d", round), nil, s.bin, "--config", path); err != nil {
		return err
	}
	s.p.Addr = addr
	s.api = &http.Client{Timeout: 10 * time.Second}
	return s.p.WaitFor(60*time.Second, "200 from /health", func() bool { return proc.HTTPOK("http://" + addr + "/health") })
}

func splitHostPort(addr string) (string, int, error) {
	i := bytes.LastIndexByte([]byte(addr), ':')
	if i < 0 {
		return "", 0, errors.New("no port")
	}
	p, err := strconv.Atoi(addr[i+1:])
	return addr[:i], p, err
}

func (s *centrifugo) stop() {
	s.p.Stop(syscall.SIGTERM, 15*time.Second)
	s.p = nil
	if s.api != nil {
		s.api.CloseIdleConnections()
	}
}

func (s *centrifugo) pids() (int, int) { return s.p.Pid(), 0 }
func (s *centrifugo) wsURL() string    { return "ws://" + s.p.Addr + "/connection/websocket" }

func (s *centrifugo) subscribeFrames(tok string) [][]byte {
	return [][]byte{
		fmt.Appendf(nil, `{"id":1,"connect":{"token":%q}}`, tok),
		[]byte(`{"id":2,"subscribe":{"channel":"` + centrifugoChannel + `"}}`),
	}
}

func (s *centrifugo) accepted(step int, f []byte) (bool, error) {
	// Replies may share a frame with other messages, one JSON object a line.
	for _, line := range bytes.Split(f, []byte("\n")) {
		if !bytes.HasPrefix(line, fmt.Appendf(nil, `{"id":%d,`, step+1)) {
			continue
		}
		if bytes.Contains(line, []byte(`"error":`)) {
			return true, fmt.Errorf("centrifugo refused: %.300s", line)
		}
		return true, nil
	}
	return false, nil
}

func (s *centrifugo) ping() ([]byte, []byte) { return []byte("{}"), []byte("{}") }

// publish sends the same data object the bridge's event carries.
func (s *centrifugo) publish(ctx context.Context, text string) error {
	body := fmt.Appendf(nil, `{"channel":%q,"data":{"id":"1","question_text":%q,"published":false}}`, centrifugoChannel, text)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.p.Addr+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", s.apiKey)
	resp, err := s.api.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("centrifugo publish: HTTP %d: %.300s", resp.StatusCode, b)
	}
	return nil
}

func (s *centrifugo) upstreams() float64 { return -1 }
func (s *centrifugo) cpuProfile(bool)    {}
