package bridge

// Fuzz targets of the two parsers that read client input: the frame envelope and the
// JSON-to-protobuf request building. The seed corpus is in testdata/fuzz; a longer run is
// described in docs/security.md.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	libraryv1 "github.com/wsbridge/wsbridge/proto/library/v1"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// seedFrames are real frames of the protocol, valid and not.
var seedFrames = []string{
	`{"stream":"questions","payload":{"action":"list","data":{"page":4294967297,"page_size":4294967297},"request_id":2}}`,
	`{"stream":"questions","payload":{"action":"subscribe","pk":"1","data":{"action":["create","update"]},"request_id":"` + strings.Repeat("x", 254) + `"}}`,
	`{"stream":"questions","payload":{"action":"list","request_id":1}}`,
	`{"stream":"questions","payload":{"action":"list","data":{"page":2,"page_size":5},"request_id":"r1"}}`,
	`{"stream":"questions","payload":{"action":"create","data":{"question_text":"Why?"},"request_id":"c"}}`,
	`{"stream":"questions","payload":{"action":"retrieve","pk":"12","request_id":3}}`,
	`{"stream":"questions","payload":{"action":"update","pk":12,"data":{"question_text":"x","published":true}}}`,
	`{"stream":"questions","payload":{"action":"patch","pk":"12","data":{"questionText":"y"}}}`,
	`{"stream":"questions","payload":{"action":"delete","pk":12,"request_id":null}}`,
	`{"stream":"questions","payload":{"action":"publish","pk":"9007199254740993"}}`,
	`{"stream":"questions","payload":{"action":"report"}}`,
	`{"stream":"choices","payload":{"action":"create","data":{"question_id":"1","choice_text":"Yes","votes":"3"}}}`,
	`{"stream":"choices","payload":{"action":"list","data":{"question_id":1,"page":"1"}}}`,
	`{"stream":"choices","payload":{"action":"vote","pk":-1}}`,
	`{"stream":"questions","payload":{"action":"subscribe","pk":1,"data":{"action":["create","update"]},"request_id":"s"}}`,
	`{"stream":"questions","payload":{"action":"unsubscribe","data":{"request_id":"s"}}}`,
	`{"stream":"questions","payload":{"action":"create","data":{"question_text":"\u00e9\ud83d\ude00","owner":1}}}`,
	`{"stream":"questions","payload":{"action":"create","data":{"question_text":5}}}`,
	`{"stream":"questions","payload":{"action":"list","data":{"page":1.5,"page_size":-1}}}`,
	`{"stream":"questions","payload":{"action":"update","pk":{"a":1},"data":[1,2]}}`,
	`{"stream":"questions","stream":"choices","payload":{"action":"list","action":"create"}}`,
	`{"stream":5,"payload":{"action":"list"}}`,
	`{"stream":"questions","payload":{"action":5,"request_id":"z"}}`,
	`{"stream":"questions","payload":{"request_id":{"x":1}}}`,
	`{"stream":"questions","payload":"list"}`,
	`{"stream":"questions"}`,
	`{"payload":{"action":"list"}}`,
	`["questions"]`,
	`{"stream":"questions",`,
	` {"stream" : "questions" , "payload" : { "action" : "list" } } `,
	`{"stream":"q\"uestions","payload":{"action":"l\\ist","request_id":"\u0000"}}`,
	`null`,
	``,
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range seedFrames {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var r request
		e := r.decode(frame)
		if e == nil && (r.action == nil || r.stream == nil) {
			t.Fatalf("no error but action %q stream %q", r.action, r.stream)
		}
		var out []byte
		if e != nil {
			// Client input is only ever the client's fault (docs/security.md).
			if e.Status < 400 || e.Status > 499 {
				t.Fatalf("status %d for frame %q", e.Status, frame)
			}
			if len(r.requestID) > MaxRequestIDBytes {
				t.Fatalf("a request_id of %d bytes is echoed", len(r.requestID))
			}
			out = appendErrorReply(nil, &r, e)
		} else {
			out = appendReply(nil, r.stream, r.action, r.data, nil, 200, r.requestID, r.pk)
			if _, ok := jsonString(r.action); !ok {
				t.Fatalf("action %q is not a JSON string", r.action)
			}
		}
		if !json.Valid(out) {
			t.Fatalf("invalid reply %q for frame %q", out, frame)
		}
		// What the rate limiter answers is built from the same decoding.
		if out := appendErrorReply(nil, &r, errTooManyReqs); !json.Valid(out) {
			t.Fatalf("invalid 429 reply %q for frame %q", out, frame)
		}
	})
}

// pollsSources are the services of the polls example, from its compiled descriptors.
func pollsSources() []serviceSource {
	svcs := pollsv1.File_polls_v1_polls_proto.Services()
	var srcs []serviceSource
	for i := 0; i < svcs.Len(); i++ {
		srcs = append(srcs, serviceSource{desc: svcs.Get(i)})
	}
	return srcs
}

// librarySources are the services of the library example (AIP style).
func librarySources() []serviceSource {
	svcs := libraryv1.File_library_v1_library_proto.Services()
	var srcs []serviceSource
	for i := 0; i < svcs.Len(); i++ {
		srcs = append(srcs, serviceSource{desc: svcs.Get(i)})
	}
	return srcs
}

// pollsCatalog is the catalog of the polls example, from its compiled descriptors.
func pollsCatalog(tb testing.TB) *catalog {
	tb.Helper()
	cat, err := buildCatalog(pollsSources())
	if err != nil {
		tb.Fatal(err)
	}
	return cat
}

// librarySeeds are frames of the library example (AIP style: name keys, cursor pages).
var librarySeeds = []string{
	`{"stream":"shelves","payload":{"action":"create","data":{"theme":"Poetry"},"request_id":1}}`,
	`{"stream":"shelves","payload":{"action":"retrieve","pk":"shelves/1","request_id":2}}`,
	`{"stream":"books","payload":{"action":"create","data":{"parent":"shelves/1","title":"Odes","author":"Keats"}}}`,
	`{"stream":"books","payload":{"action":"patch","pk":"shelves/1/books/2","data":{"title":"x"}}}`,
	`{"stream":"books","payload":{"action":"update","pk":"shelves/1/books/2","data":{"title":"x","author":"y"}}}`,
	`{"stream":"books","payload":{"action":"list","data":{"parent":"shelves/1","page_size":2,"page_token":"abc"}}}`,
	`{"stream":"books","payload":{"action":"delete","pk":"shelves/1/books/2"}}`,
}

// FuzzBuildRequest builds every action's request from fuzzed frames both ways, with wirejson
// (wire bytes) and with protojson and dynamicpb (the fallback), and requires the same
// message or the same error status from both.
func FuzzBuildRequest(f *testing.F) {
	for _, s := range append(slices.Clone(seedFrames), librarySeeds...) {
		f.Add([]byte(s))
	}
	cat, err := buildCatalog(append(pollsSources(), librarySources()...))
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{opts: defaultOptions()}
	var streams []string
	for name := range cat.streams {
		streams = append(streams, name)
	}
	slices.Sort(streams)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var r request
		e := r.decode(frame)
		if e != nil {
			return
		}
		// The frame's own stream and action first; then every action, so that any data
		// reaches every request message.
		stream, _ := jsonString(r.stream)
		res := cat.streams[stream]
		if res == nil {
			res = cat.streams[streams[len(frame)%len(streams)]]
		}
		name, _ := jsonString(r.action)
		actions := []*action{res.actions[name]}
		for _, n := range sortedKeys(res.actions) {
			actions = append(actions, res.actions[n])
		}
		for _, a := range actions {
			if a == nil {
				continue
			}
			if !a.wire {
				t.Fatalf("%s: not built with wirejson", a.method)
			}
			slow := *a
			slow.wire = false
			req, pg, e := buildRequest(nil, &slow, &r, pagesOf(&s.opts))
			msg := req.msg
			wreq, wpg, we := buildRequest(nil, a, &r, pagesOf(&s.opts))
			if (e == nil) != (we == nil) || e != nil && e.Status != we.Status || wpg != pg {
				t.Fatalf("%s: protojson builds %v (page %v), wirejson %v (page %v), for frame %q", a.name, e, pg, we, wpg, frame)
			}
			if we != nil {
				if out := appendErrorReply(nil, &r, we); !json.Valid(out) {
					t.Fatalf("%s: invalid error reply %q for frame %q", a.name, out, frame)
				}
			}
			if e != nil {
				if out := appendErrorReply(nil, &r, e); !json.Valid(out) {
					t.Fatalf("%s: invalid error reply %q for frame %q", a.name, out, frame)
				}
				if e.Status < 400 || e.Status > 499 {
					t.Fatalf("%s: status %d for client input %q", a.name, e.Status, frame)
				}
				continue
			}
			if msg == nil {
				t.Fatalf("%s: no message and no error", a.name)
			}
			// The page the backend gets is the page meta reports: never truncated.
			if a.kind == kindList && a.page != nil && msg.Get(a.page).Int() != pg.number {
				t.Fatalf("%s: page %d reaches the backend as %d", a.name, pg.number, msg.Get(a.page).Int())
			}
			if a.kind == kindList && a.pageSize != nil && msg.Get(a.pageSize).Int() != pg.size {
				t.Fatalf("%s: page size %d reaches the backend as %d", a.name, pg.size, msg.Get(a.pageSize).Int())
			}
			if _, err := proto.Marshal(msg); err != nil {
				t.Fatalf("%s: the request does not marshal: %v", a.name, err)
			}
			wmsg := dynamicpb.NewMessage(a.req)
			if err := proto.Unmarshal(wreq.wire, wmsg); err != nil {
				t.Fatalf("%s: wirejson's request %x does not unmarshal: %v", a.name, wreq.wire, err)
			}
			if !proto.Equal(msg, wmsg) {
				t.Fatalf("%s: protojson builds %v, wirejson %v, for frame %q", a.name, msg, wmsg, frame)
			}
		}
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
