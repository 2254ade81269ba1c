package bridge

import (
	"math"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/wsbridge/wsbridge/internal/wirejson"
)

// Reply encoding: every frame the bridge sends is appended to a pooled buffer by the
// functions here, replies and events alike, and a response becomes a reply's data and meta.

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
// gets its own end (the subscription's tail; see encodeEvent).

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

// appendResponseReply appends the reply to a successful call of a: the response as data,
// a list's page as meta.
func appendResponseReply(b []byte, res *resource, a *action, resp *dynamicpb.Message, pg page, requestID []byte, num bool) ([]byte, error) {
	data := getBuf()
	defer putBuf(data)
	var err error
	if *data, err = appendResponseDataAs(*data, a, resp, num); err != nil {
		return b, err
	}
	var meta []byte
	if a.kind == kindList {
		meta = appendMeta(nil, a, resp, pg, num)
	}
	status := http.StatusOK
	if a.kind == kindCreate {
		status = http.StatusCreated
	}
	return appendReply(b, res.streamJSON, a.nameJSON, *data, nil, status, requestID, meta), nil
}

// appendWireReply appends the reply to a successful call of a whose response is the wire
// bytes resp: the response as data, written from the bytes by wirejson, a list's page as
// meta.
func appendWireReply(b []byte, res *resource, a *action, resp []byte, pg page, requestID []byte, num bool) ([]byte, error) {
	status := http.StatusOK
	if a.kind == kindCreate {
		status = http.StatusCreated
	}
	// The reply is written in place: data goes straight into b, then the rest.
	b = appendFrameHead(b, res.streamJSON, a.nameJSON)
	b = appendKeyTo(b, "data")
	var err error
	if b, err = appendWireData(b, a, resp, num); err != nil {
		return b, err
	}
	b = append(b, `,"errors":[],"response_status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = appendMemberTo(b, "request_id", requestID)
	if a.kind == kindList {
		b = appendKeyTo(b, "meta")
		b = appendMeta(b, a, wireMsg(resp), pg, num)
	}
	return append(b, "}}"...), nil
}

// appendWireData appends a reply's data for the response wire bytes resp.
func appendWireData(b []byte, a *action, resp []byte, num bool) ([]byte, error) {
	mo := wirejson.MarshalOptions{Int64AsNumber: num}
	switch a.kind {
	case kindDelete:
		return append(b, "{}"...), nil
	case kindList:
		b = append(b, '[')
		first := true
		md, items := a.items.Message(), a.items.Number()
		for w := resp; len(w) > 0; {
			num, typ, n := protowire.ConsumeTag(w)
			if n < 0 {
				return b, protowire.ParseError(n)
			}
			w = w[n:]
			if num == items && typ == protowire.BytesType {
				v, m := protowire.ConsumeBytes(w)
				if m < 0 {
					return b, protowire.ParseError(m)
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				var err error
				if b, err = mo.Append(b, md, v); err != nil {
					return b, err
				}
				w = w[m:]
				continue
			}
			m := protowire.ConsumeFieldValue(num, typ, w)
			if m < 0 {
				return b, protowire.ParseError(m)
			}
			w = w[m:]
		}
		return append(b, ']'), nil
	}
	return mo.Append(b, a.resp, resp)
}

// wireMsg is a message's wire bytes, read one scalar field at a time (list meta).
type wireMsg []byte

// Get returns the singular scalar field f: its last value, as the wire format says, or its
// default when absent.
func (w wireMsg) Get(f protoreflect.FieldDescriptor) protoreflect.Value {
	v := f.Default()
	for b := []byte(w); len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			break
		}
		if num == f.Number() {
			if x, ok := wireScalar(f, typ, b[:m]); ok {
				v = x
			}
		}
		b = b[m:]
	}
	return v
}

// wireScalar reads the value of the scalar field f from its wire encoding b of type typ.
func wireScalar(f protoreflect.FieldDescriptor, typ protowire.Type, b []byte) (protoreflect.Value, bool) {
	switch typ {
	case protowire.VarintType:
		u, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return protoreflect.Value{}, false
		}
		switch f.Kind() {
		case protoreflect.BoolKind:
			return protoreflect.ValueOfBool(u != 0), true
		case protoreflect.Int32Kind:
			return protoreflect.ValueOfInt32(int32(u)), true
		case protoreflect.Int64Kind:
			return protoreflect.ValueOfInt64(int64(u)), true
		case protoreflect.Uint32Kind:
			return protoreflect.ValueOfUint32(uint32(u)), true
		case protoreflect.Uint64Kind:
			return protoreflect.ValueOfUint64(u), true
		case protoreflect.Sint32Kind:
			return protoreflect.ValueOfInt32(int32(protowire.DecodeZigZag(u & math.MaxUint32))), true
		case protoreflect.Sint64Kind:
			return protoreflect.ValueOfInt64(protowire.DecodeZigZag(u)), true
		case protoreflect.EnumKind:
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(u))), true
		}
	case protowire.Fixed32Type:
		u, n := protowire.ConsumeFixed32(b)
		if n < 0 {
			return protoreflect.Value{}, false
		}
		switch f.Kind() {
		case protoreflect.Fixed32Kind:
			return protoreflect.ValueOfUint32(u), true
		case protoreflect.Sfixed32Kind:
			return protoreflect.ValueOfInt32(int32(u)), true
		case protoreflect.FloatKind:
			return protoreflect.ValueOfFloat32(math.Float32frombits(u)), true
		}
	case protowire.Fixed64Type:
		u, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return protoreflect.Value{}, false
		}
		switch f.Kind() {
		case protoreflect.Fixed64Kind:
			return protoreflect.ValueOfUint64(u), true
		case protoreflect.Sfixed64Kind:
			return protoreflect.ValueOfInt64(int64(u)), true
		case protoreflect.DoubleKind:
			return protoreflect.ValueOfFloat64(math.Float64frombits(u)), true
		}
	case protowire.BytesType:
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protoreflect.Value{}, false
		}
		switch f.Kind() {
		case protoreflect.StringKind:
			return protoreflect.ValueOfString(string(v)), true
		case protoreflect.BytesKind:
			return protoreflect.ValueOfBytes(append([]byte(nil), v...)), true
		}
	}
	return protoreflect.Value{}, false
}

// appendResponseData appends a reply's data (and for list, its meta) for a response, with
// 64-bit integers as strings.
func appendResponseData(b []byte, a *action, resp *dynamicpb.Message) ([]byte, error) {
	return appendResponseDataAs(b, a, resp, false)
}

// appendResponseDataAs is appendResponseData; num writes safe 64-bit integers as numbers
// (WithInt64AsNumber).
func appendResponseDataAs(b []byte, a *action, resp *dynamicpb.Message, num bool) ([]byte, error) {
	switch a.kind {
	case kindDelete:
		return append(b, "{}"...), nil
	case kindList:
		list := resp.Get(a.items).List()
		b = append(b, '[')
		for i := 0; i < list.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = marshalAppend(b, list.Get(i).Message().Interface(), num); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	return marshalAppend(b, resp, num)
}

// fieldGetter is a response whose scalar fields appendMeta reads: a dynamicpb message, or
// wire bytes (wireMsg).
type fieldGetter interface {
	Get(protoreflect.FieldDescriptor) protoreflect.Value
}

// appendMeta appends a list reply's meta: the page used and the response's other scalars. A
// cursor-paginated list (aip.go) has no page number: its meta is the page size asked for,
// then next_page_token and total_size when the response has them.
func appendMeta(b []byte, a *action, resp fieldGetter, pg page, num bool) []byte {
	b = append(b, '{')
	if a.pageToken == nil {
		b = append(b, `"page":`...)
		b = strconv.AppendInt(b, pg.number, 10)
		b = append(b, ',')
	}
	b = append(b, `"page_size":`...)
	b = strconv.AppendInt(b, pg.size, 10)
	for _, f := range a.meta {
		b = append(b, ',')
		b = appendJSONString(b, string(f.Name()))
		b = append(b, ':')
		b = appendScalar(b, f, resp.Get(f), num)
	}
	return append(b, '}')
}

// appendScalar writes one scalar field value as protojson would; num writes 64-bit integers
// within ±(2^53−1) as numbers (WithInt64AsNumber).
func appendScalar(b []byte, f protoreflect.FieldDescriptor, v protoreflect.Value, num bool) []byte {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(b, v.Uint(), 10)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if n := v.Int(); num && n >= -maxSafeInt && n <= maxSafeInt {
			return strconv.AppendInt(b, n, 10)
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, v.Int(), 10)
		return append(b, '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if n := v.Uint(); num && n <= maxSafeInt {
			return strconv.AppendUint(b, n, 10)
		}
		b = append(b, '"')
		b = strconv.AppendUint(b, v.Uint(), 10)
		return append(b, '"')
	case protoreflect.StringKind:
		return appendJSONString(b, v.String())
	case protoreflect.EnumKind:
		if ev := f.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendJSONString(b, string(ev.Name()))
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10)
	}
	// Floats and bytes are rare in list meta; let protojson format them exactly.
	m := dynamicpb.NewMessage(f.ContainingMessage())
	m.Set(f, v)
	out, err := marshalJSON.Marshal(m)
	if err != nil {
		return append(b, "null"...)
	}
	val := []byte("null")
	eachMember(out, func(k, v []byte) {
		if keyIs(k, string(f.Name())) {
			val = v
		}
	})
	return append(b, val...)
}

// Output uses proto field names, emits unpopulated fields, and int64 as strings.
var marshalJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// marshalAppend appends m as protojson writes it; with num (WithInt64AsNumber) its 64-bit
// integers within ±maxSafeInt become JSON numbers, as DRF writes ids, and larger ones stay
// strings so no client rounds them.
func marshalAppend(b []byte, m proto.Message, num bool) ([]byte, error) {
	if !num {
		return marshalJSON.MarshalAppend(b, m)
	}
	out, err := marshalJSON.Marshal(m)
	if err != nil {
		return b, err
	}
	return appendInt64Numbers(b, out, m.ProtoReflect().Descriptor()), nil
}

// The frames a subscription receives, built with the same encoder as every reply.
// An event is encoded once into a head shared by all its subscribers:
//
//	{"stream":..,"payload":{"action":..,"pk":..,"data":..,"model":..
//
// and each subscriber's queue gets that head plus its own end, ,"request_id":..}} (the
// subscription's tail), so fan-out copies no event bytes.

// eventJSON are the event kinds as JSON strings, ready to splice into frames.
var eventJSON = map[string][]byte{"create": []byte(`"create"`), "update": []byte(`"update"`), "delete": []byte(`"delete"`)}

var (
	subscribeJSON         = []byte(`"subscribe"`)
	subscribeInstanceJSON = []byte(`"subscribe_instance"`)
)

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
	b = appendMemberTo(b, "model", res.modelJSON)
	if o := sm.eventOffset(ev); o != "" { // resume.go; a string whatever -int64-as-number says
		b = appendJSONString(appendKeyTo(b, "offset"), o)
	}
	return b, nil
}

// confirm is the 200 reply to a subscribe, or with resumed the notice that a broken
// upstream is back; at is the position delivery continues after (resume.go).
func (s *subscription) confirm(resumed bool, at position) outFrame {
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
	if at.offset != "" {
		data = appendJSONString(appendKeyTo(data, "offset"), at.offset)
	}
	if s.hasSince || resumed {
		data = appendKeyTo(data, "recovered")
		data = strconv.AppendBool(data, at.recovered)
	}
	if resumed {
		data = append(data, `,"resumed":true`...)
	} else {
		s.answered(http.StatusOK) // tracing.go
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
	s.answered(e.Status) // tracing.go: a no-op for a notice
	buf := getBuf()
	*buf = appendReply(*buf, s.up.res.streamJSON, action, nil, e.appendErrors(nil), e.Status, s.requestID, nil)
	return outFrame{head: *buf, buf: buf}
}
