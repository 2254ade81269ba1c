package bridge

import "encoding/json"

// request is a decoded request frame: everything the later steps read, found in one pass
// over the envelope, one over the payload and one over data. Every raw field is a JSON value
// sliced from the frame (nil when absent), so a request is only valid while the frame's
// buffer is. Later steps read these fields and never scan the frame again.
type request struct {
	stream    []byte
	action    []byte
	name      string // action as text: "retrieve", "subscribe"...
	pk        []byte // payload.pk, else data.pk
	data      []byte
	requestID []byte
	dataPK    bool // pk came from data.pk (the original README's form); see dataFor

	traceparent []byte // payload.traceparent: W3C trace context of this request (tracing.go)
	obs         reqObs // metrics, span and log line of this request (tracing.go)

	// data, when it is an object: every member in order (a list's page members are read
	// from here, in order, since which error a frame gets depends on it), and the members
	// the protocol itself reads.
	members []member
	unsubID []byte // data.request_id: which subscription an unsubscribe ends

	// data.action of subscribe and unsubscribe: the event kinds, or why they are invalid
	// (answered only after the permission check).
	eventsRaw []byte
	events    eventSet
	eventsErr *errorReply

	// data.since of subscribe and subscribe_instance (resume.go): "" when absent.
	since string

	memberBuf [8]member // members' storage for usual frames, so decoding allocates nothing
}

// member is one member of a JSON object: the key's raw token (quotes included) and the value.
type member struct{ key, value []byte }

// decode reads a request frame into r. On a malformed frame it returns a reply error, and
// whatever of stream, action and request_id it could read is set for the echo.
func (r *request) decode(frame []byte) *errorReply {
	*r = request{}
	if !json.Valid(frame) {
		return newError(400, "Invalid JSON.")
	}
	i := skipSpace(frame, 0)
	if frame[i] != '{' {
		return newError(400, "The frame must be a JSON object.")
	}
	var payload []byte
	eachMember(frame, func(k, v []byte) {
		switch {
		case keyIs(k, "stream"):
			r.stream = v
		case keyIs(k, "payload"):
			payload = v
		}
	})
	badStream := r.stream != nil && r.stream[0] != '"' && !isNull(r.stream)
	if badStream {
		r.stream = nil
	}
	if isNull(payload) {
		return newError(400, "Missing payload.")
	}
	if payload[0] != '{' {
		return newError(400, "payload must be a JSON object.")
	}
	eachMember(payload, func(k, v []byte) {
		switch {
		case keyIs(k, "action"):
			r.action = v
		case keyIs(k, "pk"):
			r.pk = v
		case keyIs(k, "data"):
			r.data = v
		case keyIs(k, "request_id"):
			r.requestID = v
		case keyIs(k, "traceparent"):
			r.traceparent = v
		}
	})
	if r.requestID != nil {
		switch c := r.requestID[0]; {
		case c == '"', c == '-', c >= '0' && c <= '9':
		case isNull(r.requestID):
			r.requestID = nil
		default:
			r.requestID = nil
			return newError(400, "request_id must be a string or a number.")
		}
		if len(r.requestID) > MaxRequestIDBytes {
			// Each subscription keeps its request_id: unbounded ids would make a
			// connection's state as large as its frames allow.
			r.requestID = nil
			return errInvalidRequestID
		}
	}
	if isNull(r.action) {
		r.action = nil
		return newError(400, "Missing action.")
	}
	if r.action[0] != '"' {
		r.action = nil
		return newError(400, "action must be a string.")
	}
	if badStream {
		return newError(400, "stream must be a string.")
	}
	if isNull(r.stream) {
		r.stream = nil
		return newError(400, "Missing stream.")
	}
	r.name, _ = jsonString(r.action)
	if isNull(r.pk) {
		r.pk = nil
	}
	if isNull(r.data) {
		r.data = nil
	}
	var dpk, sinceRaw []byte
	var longEventAction bool
	if r.data != nil && r.data[0] == '{' {
		r.members = r.memberBuf[:0]
		eachMember(r.data, func(k, v []byte) {
			r.members = append(r.members, member{k, v})
			switch {
			case keyIs(k, "pk"):
				if !isNull(v) {
					dpk = v
				}
			case keyIs(k, "action"):
				r.eventsRaw = v
				longEventAction = longEventAction || len(v) > MaxRequestIDBytes
			case keyIs(k, "request_id"):
				if !isNull(v) {
					r.unsubID = v
				}
			case keyIs(k, "since"):
				sinceRaw = v
			}
		})
	}
	// The original channels-api README puts the key inside data ({"action": "publish",
	// "data": {"pk": "1"}}), and users copy that into subscribe: data.pk is the key wherever
	// payload.pk is, and two different keys are refused rather than one silently winning.
	if dpk != nil {
		if r.pk != nil && !samePK(r.pk, dpk) {
			return errPKConflict
		}
		r.pk, r.dataPK = dpk, true
	}
	switch r.name {
	case "subscribe", "subscribe_instance":
		// A subscription keeps its pk and data.action as sent, so they are bounded too.
		if len(r.pk) > MaxRequestIDBytes {
			return errNotFound
		}
		if longEventAction {
			return errEventAction
		}
		var err *errorReply
		if r.since, err = decodeSince(sinceRaw); err != nil {
			return err
		}
		r.events, r.eventsErr = parseEvents(r.data, r.eventsRaw)
	case "unsubscribe":
		r.events, r.eventsErr = parseEvents(r.data, r.eventsRaw)
	}
	return nil
}

// eventSet is a set of event kinds: the data.action of a subscription.
type eventSet uint8

// eventActions are the event kinds a client can subscribe to, as /schema lists them.
var eventActions = []string{"create", "update", "delete"}

// sortedEvents are the event kinds in the order a subscription sends them to the backend.
var sortedEvents = [...]string{"create", "delete", "update"}

func eventOf(name string) eventSet {
	for i, a := range sortedEvents {
		if a == name {
			return 1 << i
		}
	}
	return 0
}

func (s eventSet) has(name string) bool { return s&eventOf(name) != 0 }

// names lists the kinds in s, sorted.
func (s eventSet) names() []string {
	var out []string
	for i, a := range sortedEvents {
		if s&(1<<i) != 0 {
			out = append(out, a)
		}
	}
	return out
}

// parseEvents reads data.action: one event action or an array of them.
func parseEvents(data, raw []byte) (eventSet, *errorReply) {
	if data == nil || data[0] != '{' || isNull(raw) {
		return 0, errActionRequired
	}
	var set eventSet
	add := func(v []byte) bool {
		s, ok := jsonString(v)
		e := eventOf(s)
		set |= e
		return ok && e != 0
	}
	switch raw[0] {
	case '"':
		if !add(raw) {
			return 0, errEventAction
		}
	case '[':
		ok := true
		eachElement(raw, func(v []byte) { ok = ok && add(v) })
		if !ok {
			return 0, errEventAction
		}
		if set == 0 {
			return 0, errActionRequired
		}
	default:
		return 0, errEventAction
	}
	return set, nil
}

var errPKConflict = &errorReply{Status: 400, Fields: []fieldError{{Field: "pk", Messages: []string{
	"payload.pk and data.pk differ: send the key once, in either place.",
}}}}

// samePK reports whether two raw JSON keys name the same key: 1 and "1" do.
func samePK(a, b []byte) bool {
	ta, oka := jsonScalarText(a)
	tb, okb := jsonScalarText(b)
	if oka && okb {
		return ta == tb
	}
	return string(a) == string(b)
}

// MaxRequestIDBytes bounds a request_id, as raw JSON (quotes and escapes included); a longer
// one is answered 400 ["Invalid request_id."] with request_id null. A subscription's pk and
// data.action have the same bound (404 ["Not found."], 400 ["Invalid event action."]).
const MaxRequestIDBytes = 255
