package natsbroker

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/wsbridge/wsbridge/pubsub"
)

// An Event travels as a protobuf message, encoded by hand to need no
// generated code:
//
//	message Event { string action = 1; string pk = 2; bytes data = 3; }
const (
	fieldAction protowire.Number = 1
	fieldPK     protowire.Number = 2
	fieldData   protowire.Number = 3
)

var errMalformed = errors.New("natsbroker: malformed event")

func encode(ev pubsub.Event) []byte {
	n := 0
	for _, f := range [...]int{len(ev.Action), len(ev.PK), len(ev.Data)} {
		n += 1 + protowire.SizeBytes(f) // each tag is one byte
	}
	b := make([]byte, 0, n)
	b = appendField(b, fieldAction, []byte(ev.Action))
	b = appendField(b, fieldPK, []byte(ev.PK))
	return appendField(b, fieldData, ev.Data)
}

func appendField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b // proto3: empty is absent
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// decode parses an encoded Event. ev.Data aliases b, which NATS allocates
// afresh for every message.
func decode(b []byte) (pubsub.Event, error) {
	var ev pubsub.Event
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ev, errMalformed
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b) // skip: a newer field
			if n < 0 {
				return ev, errMalformed
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ev, errMalformed
		}
		b = b[n:]
		switch num {
		case fieldAction:
			ev.Action = string(v)
		case fieldPK:
			ev.PK = string(v)
		case fieldData:
			ev.Data = v
		}
	}
	return ev, nil
}
