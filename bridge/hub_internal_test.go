package bridge

import (
	"errors"
	"io"
	"testing"
)

// TestSendFailureNeverNil: when SendMsg fails, start returns what RecvMsg says, and the
// SendMsg error when RecvMsg says nothing useful (nil or io.EOF): never a nil error, which
// with the nil stream would make pump dereference nil.
func TestSendFailureNeverNil(t *testing.T) {
	sendErr := errors.New("send failed")
	recvErr := errors.New("rpc error: code = Unavailable")
	for _, tc := range []struct {
		name string
		recv error
		want error
	}{
		{"RecvMsg succeeded", nil, sendErr},
		{"RecvMsg at EOF", io.EOF, sendErr},
		{"RecvMsg has the status", recvErr, recvErr},
	} {
		if got := sendFailure(sendErr, tc.recv); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
