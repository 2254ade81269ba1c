package bridge

import "strconv"

// Reply encoding: every frame the bridge sends is appended to a pooled buffer by the
// functions here, replies and events alike.

// nullJSON stands in for absent echo values.
var nullJSON = []byte("null")

func orNull(b []byte) []byte {
	if b == nil {
		return nullJSON
	}
	return b
}

// Every frame the bridge sends is {"stream":..,"payload":{"action":.., members.., "request_id":..}}:
// appendFrameHead writes up to the action, appendMemberTo each member, appendFrameEnd the
// request_id and the closing braces. An event's head is shared by its subscribers, and each
// gets its own end (event.go).

// appendFrameHead begins a frame: {"stream":<stream>,"payload":{"action":<action>.
func appendFrameHead(b, stream, action []byte) []byte {
	b = append(b, `{"stream":`...)
	b = append(b, orNull(stream)...)
	b = append(b, `,"payload":{"action":`...)
	return append(b, orNull(action)...)
}

// appendMemberTo appends ,"<name>":<raw> to a frame's payload.
func appendMemberTo(b []byte, name string, raw []byte) []byte {
	return append(appendKeyTo(b, name), orNull(raw)...)
}

// appendKeyTo appends ,"<name>": for a value the caller appends; name needs no escaping.
func appendKeyTo(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendFrameEnd ends a frame: ,"request_id":<id>, then ,"meta":<meta> unless meta is nil.
func appendFrameEnd(b, requestID, meta []byte) []byte {
	b = appendMemberTo(b, "request_id", requestID)
	if meta != nil {
		b = appendMemberTo(b, "meta", meta)
	}
	return append(b, "}}"...)
}

// appendReply appends a reply frame. data and errs are raw JSON; meta is the raw JSON of the
// list meta object, or nil to leave the key out.
func appendReply(b, stream, action, data []byte, errs []byte, status int, requestID, meta []byte) []byte {
	b = appendFrameHead(b, stream, action)
	b = appendMemberTo(b, "data", data)
	if errs == nil {
		errs = emptyList
	}
	b = appendMemberTo(b, "errors", errs)
	b = append(b, `,"response_status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	return appendFrameEnd(b, requestID, meta)
}

var emptyList = []byte("[]")

// appendErrorReply appends the reply for a failed request.
func appendErrorReply(b []byte, r *request, e *errorReply) []byte {
	return appendReply(b, r.stream, r.action, nil, e.appendErrors(nil), e.Status, r.requestID, nil)
}
