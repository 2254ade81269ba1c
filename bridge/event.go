package bridge

import (
	"net/http"

	"google.golang.org/protobuf/types/dynamicpb"
)

// The frames a subscription receives, built with the same encoder as every reply (frame.go).
// An event is encoded once into a head shared by all its subscribers:
//
//	{"stream":..,"payload":{"action":..,"pk":..,"data":..,"model":..
//
// and each subscriber's queue gets that head plus its own end, ,"request_id":..}}, so fan-out
// copies no event bytes.

// eventJSON are the event kinds as JSON strings, ready to splice into frames.
var eventJSON = map[string][]byte{"create": []byte(`"create"`), "update": []byte(`"update"`), "delete": []byte(`"delete"`)}

var (
	subscribeJSON         = []byte(`"subscribe"`)
	subscribeInstanceJSON = []byte(`"subscribe_instance"`)
)

// subscriptionEnd is the end of every frame a subscription receives: its request_id.
func subscriptionEnd(requestID []byte) []byte { return appendFrameEnd(nil, requestID, nil) }

// encodeEvent builds the head of an event frame, shared by all subscribers of up.
func encodeEvent(up *upstream, ev *dynamicpb.Message, action string, num bool) ([]byte, error) {
	res := up.res
	sm := res.subscribe
	b := make([]byte, 0, 256)
	b = appendFrameHead(b, res.streamJSON, eventJSON[action])
	b = appendKeyTo(b, "pk")
	if sm.evPK != nil {
		b = appendScalar(b, sm.evPK, ev.Get(sm.evPK), num)
	} else {
		b = append(b, "null"...)
	}
	b = appendKeyTo(b, "data")
	msg := ev.Get(sm.evData).Message().Interface()
	if up.key.instance && action == "delete" && sm.evPK != nil && !sm.dataHasPK {
		// DCRF's clients find a deleted instance by data.pk: it goes first in data, unless
		// the resource has a field of that name.
		data, err := marshalAppend(nil, msg, num)
		if err != nil {
			return nil, err
		}
		if data[0] == '{' {
			b = append(b, `{"pk":`...)
			b = appendScalar(b, sm.evPK, ev.Get(sm.evPK), num)
			if data = data[skipSpace(data, 1):]; data[0] != '}' {
				b = append(b, ',')
			}
		}
		b = append(b, data...)
	} else {
		var err error
		if b, err = marshalAppend(b, msg, num); err != nil {
			return nil, err
		}
	}
	return appendMemberTo(b, "model", res.modelJSON), nil
}

// confirm is the 200 reply to a subscribe, or with resumed the notice that a broken
// upstream is back.
func (s *subscription) confirm(resumed bool) outFrame {
	action := subscribeJSON
	var data []byte
	if s.instance {
		action = subscribeInstanceJSON
		data = append(append(data, `{"pk":`...), s.pkRaw...)
	} else {
		data = append(append(data, `{"action":`...), s.actionRaw...)
		if s.pkRaw != nil {
			data = appendMemberTo(data, "pk", s.pkRaw)
		}
	}
	if resumed {
		data = append(data, `,"resumed":true`...)
	}
	data = append(data, '}')
	buf := getBuf()
	*buf = appendReply(*buf, s.up.res.streamJSON, action, data, nil, http.StatusOK, s.requestID, nil)
	return outFrame{head: *buf, buf: buf}
}

// failure is the reply (or notice) that the subscription's upstream is unavailable.
func (s *subscription) failure(e *errorReply) outFrame {
	action := subscribeJSON
	if s.instance {
		action = subscribeInstanceJSON
	}
	buf := getBuf()
	*buf = appendReply(*buf, s.up.res.streamJSON, action, nil, e.appendErrors(nil), e.Status, s.requestID, nil)
	return outFrame{head: *buf, buf: buf}
}
