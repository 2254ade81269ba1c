package bridge

import (
	"context"
	"errors"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorReply is a failed request as the client sees it: an HTTP-style response_status and the
// reply's errors list.
type errorReply struct {
	// Status is the reply's response_status.
	Status int
	// Messages are the plain error strings of the reply's errors list.
	Messages []string
	// Fields, when set, is DRF-style field validation: the errors list holds one object
	// mapping each field to its messages, in the order of the fields.
	Fields []fieldError
}

// fieldError is one field's validation messages.
type fieldError struct {
	Field    string
	Messages []string
}

func newError(status int, messages ...string) *errorReply {
	return &errorReply{Status: status, Messages: messages}
}

func (e *errorReply) Error() string {
	if len(e.Messages) > 0 {
		return http.StatusText(e.Status) + ": " + e.Messages[0]
	}
	if len(e.Fields) > 0 {
		return http.StatusText(e.Status) + ": invalid field " + e.Fields[0].Field
	}
	return http.StatusText(e.Status)
}

// appendErrors appends the errors list as JSON.
func (e *errorReply) appendErrors(b []byte) []byte {
	b = append(b, '[')
	if len(e.Fields) > 0 {
		b = append(b, '{')
		for i, f := range e.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.Field)
			b = append(b, ':')
			b = appendStrings(b, f.Messages)
		}
		b = append(b, '}')
	} else {
		for i, m := range e.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, m)
		}
	}
	return append(b, ']')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// Errors the bridge itself answers with. Their texts are part of the protocol.
var (
	errNotFound         = newError(http.StatusNotFound, "Not found.")
	errUnknownStream    = newError(http.StatusNotFound, "Unknown stream.")
	errInvalidAction    = newError(http.StatusBadRequest, "Invalid Action")
	errInvalidPage      = newError(http.StatusBadRequest, "Invalid page.")
	errInvalidPageSz    = newError(http.StatusBadRequest, "Invalid page size.")
	errNotReady         = newError(http.StatusServiceUnavailable, "The bridge has not discovered its backends yet.")
	errShuttingDown     = newError(http.StatusServiceUnavailable, "The bridge is shutting down.")
	errDataNotObject    = newError(http.StatusBadRequest, "data must be a JSON object.")
	errPermission       = newError(http.StatusUnauthorized, "Permission Denied")
	errTooManyReqs      = newError(http.StatusTooManyRequests, "Too many requests.")
	errActionRequired   = newError(http.StatusBadRequest, "action required")
	errEventAction      = newError(http.StatusBadRequest, "Invalid event action.")
	errTooManySubs      = newError(http.StatusTooManyRequests, "Too many subscriptions.")
	errInvalidRequestID = newError(http.StatusBadRequest, "Invalid request_id.")
)

// errorFromStatus maps a backend's gRPC status to the reply error.
func errorFromStatus(st *status.Status) *errorReply {
	code := st.Code()
	switch code {
	case codes.NotFound:
		// The protocol's not-found reply is fixed, whatever the backend's wording.
		return errNotFound
	case codes.InvalidArgument:
		if fe := fieldErrors(st); fe != nil {
			return &errorReply{Status: http.StatusBadRequest, Fields: fe}
		}
	}
	msg := st.Message()
	if msg == "" {
		msg = code.String()
	}
	return newError(runtime.HTTPStatusFromCode(code), msg)
}

// errorFromCall maps the error of a gRPC call, including context errors the client library
// returns without a status.
func errorFromCall(err error) *errorReply {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusGatewayTimeout, "The backend did not answer in time.")
	case errors.Is(err, context.Canceled):
		return newError(499, "The request was cancelled.")
	}
	return errorFromStatus(status.Convert(err))
}

// fieldErrors reads google.rpc.BadRequest field violations, merging repeated fields.
func fieldErrors(st *status.Status) []fieldError {
	var out []fieldError
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			field := v.GetField()
			if field == "" {
				field = "non_field_errors"
			}
			found := false
			for i := range out {
				if out[i].Field == field {
					out[i].Messages = append(out[i].Messages, v.GetDescription())
					found = true
					break
				}
			}
			if !found {
				out = append(out, fieldError{Field: field, Messages: []string{v.GetDescription()}})
			}
		}
	}
	return out
}

// firstMessage is the first message of e, or its status text.
func (e *errorReply) firstMessage() string {
	if len(e.Messages) > 0 {
		return e.Messages[0]
	}
	return http.StatusText(e.Status)
}
