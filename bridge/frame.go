package bridge

import (
	"encoding/json"
	"strconv"
)

// request is a decoded request frame. Every field is a raw JSON value sliced from the frame
// (nil when absent), so it is only valid while the frame's buffer is.
type request struct {
	stream    []byte
	action    []byte
	pk        []byte
	data      []byte
	requestID []byte
	dataPK    bool // pk came from data.pk (the original README's form); see dropDataPK
}

// decodeRequest reads the envelope of a request frame. On a malformed frame it returns a
// reply error, and whatever of stream, action and request_id it could read is set for the echo.
func decodeRequest(frame []byte) (request, *errorReply) {
	var r request
	if !json.Valid(frame) {
		return r, newError(400, "Invalid JSON.")
	}
	i := skipSpace(frame, 0)
	if frame[i] != '{' {
		return r, newError(400, "The frame must be a JSON object.")
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
		return r, newError(400, "Missing payload.")
	}
	if payload[0] != '{' {
		return r, newError(400, "payload must be a JSON object.")
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
		}
	})
	if r.requestID != nil {
		switch c := r.requestID[0]; {
		case c == '"', c == '-', c >= '0' && c <= '9':
		case isNull(r.requestID):
			r.requestID = nil
		default:
			r.requestID = nil
			return r, newError(400, "request_id must be a string or a number.")
		}
		if len(r.requestID) > MaxRequestIDBytes {
			// Each subscription keeps its request_id: unbounded ids would make a
			// connection's state as large as its frames allow.
			r.requestID = nil
			return r, errInvalidRequestID
		}
	}
	if isNull(r.action) {
		r.action = nil
		return r, newError(400, "Missing action.")
	}
	if r.action[0] != '"' {
		r.action = nil
		return r, newError(400, "action must be a string.")
	}
	if badStream {
		return r, newError(400, "stream must be a string.")
	}
	if isNull(r.stream) {
		r.stream = nil
		return r, newError(400, "Missing stream.")
	}
	if isNull(r.pk) {
		r.pk = nil
	}
	if isNull(r.data) {
		r.data = nil
	}
	// The original channels-api README puts the key inside data ({"action": "publish",
	// "data": {"pk": "1"}}), and users copy that into subscribe: data.pk is the key wherever
	// payload.pk is, and two different keys are refused rather than one silently winning.
	if r.data != nil && r.data[0] == '{' {
		var dpk []byte
		eachMember(r.data, func(k, v []byte) {
			if keyIs(k, "pk") && !isNull(v) {
				dpk = v
			}
		})
		if dpk != nil {
			if r.pk != nil && !samePK(r.pk, dpk) {
				return r, errPKConflict
			}
			r.pk, r.dataPK = dpk, true
		}
	}
	if keyIs(r.action, "subscribe") || keyIs(r.action, "subscribe_instance") {
		// A subscription keeps its pk and data.action as sent, so they are bounded too.
		if len(r.pk) > MaxRequestIDBytes {
			return r, errNotFound
		}
		if r.data != nil && r.data[0] == '{' {
			var bad bool
			eachMember(r.data, func(k, v []byte) {
				bad = bad || keyIs(k, "action") && len(v) > MaxRequestIDBytes
			})
			if bad {
				return r, errEventAction
			}
		}
	}
	return r, nil
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

// dropDataPK returns data without its pk member when decodeRequest took data.pk as the
// request's key and has (the fields of the message data fills) has no field of that name:
// the key then reaches the backend through the key field instead. Otherwise data is returned
// as sent, so a data.pk the action cannot use is still refused as an unknown field.
func dropDataPK(r *request, data []byte, usesKey bool, has func(k []byte) bool) []byte {
	if !r.dataPK || !usesKey || data == nil || data[0] != '{' {
		return data
	}
	var out []byte
	var dropped bool
	eachMember(data, func(k, v []byte) {
		if keyIs(k, "pk") && !has(k) {
			dropped = true
			return
		}
		out = appendMember(out, k, v)
	})
	if !dropped {
		return data
	}
	if out == nil {
		return []byte("{}")
	}
	return append(out, '}')
}

// MaxRequestIDBytes bounds a request_id, as raw JSON (quotes and escapes included); a longer
// one is answered 400 ["Invalid request_id."] with request_id null. A subscription's pk and
// data.action have the same bound (404 ["Not found."], 400 ["Invalid event action."]).
const MaxRequestIDBytes = 255

// nullJSON stands in for absent echo values.
var nullJSON = []byte("null")

func orNull(b []byte) []byte {
	if b == nil {
		return nullJSON
	}
	return b
}

// appendReply appends a reply frame. data and errs are raw JSON; meta is the raw JSON of the
// list meta object, or nil to leave the key out.
func appendReply(b, stream, action, data []byte, errs []byte, status int, requestID, meta []byte) []byte {
	b = append(b, `{"stream":`...)
	b = append(b, orNull(stream)...)
	b = append(b, `,"payload":{"action":`...)
	b = append(b, orNull(action)...)
	b = append(b, `,"data":`...)
	b = append(b, orNull(data)...)
	b = append(b, `,"errors":`...)
	if errs == nil {
		b = append(b, "[]"...)
	} else {
		b = append(b, errs...)
	}
	b = append(b, `,"response_status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"request_id":`...)
	b = append(b, orNull(requestID)...)
	if meta != nil {
		b = append(b, `,"meta":`...)
		b = append(b, meta...)
	}
	return append(b, "}}"...)
}

// appendErrorReply appends the reply for a failed request.
func appendErrorReply(b []byte, r *request, e *errorReply) []byte {
	return appendReply(b, r.stream, r.action, nil, e.appendErrors(nil), e.Status, r.requestID, nil)
}
