package bridge

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
)

// buildMessage is buildRequest's request as a message, whichever way it was built.
func buildMessage(t testing.TB, a *action, r *request, pd pageDefaults) (*dynamicpb.Message, page, *errorReply) {
	t.Helper()
	req, pg, e := buildRequest(nil, a, r, pd)
	if e != nil || !a.wire {
		return req.msg, pg, e
	}
	msg := dynamicpb.NewMessage(a.req)
	if err := proto.Unmarshal(req.wire, msg); err != nil {
		t.Fatalf("the request's wire bytes %x: %v", req.wire, err)
	}
	return msg, pg, nil
}
