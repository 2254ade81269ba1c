package bridge

import (
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

var (
	// Input accepts both field-name spellings and numbers or strings for integers; fields
	// the message does not know are an error, never silently dropped.
	unmarshalJSON = protojson.UnmarshalOptions{}
	// Output uses proto field names, emits unpopulated fields, and int64 as strings.
	marshalJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
)

// page is the pagination a list request used.
type page struct {
	number, size int64
}

// pageDefaults are a list's page size when the client names none, and its largest.
type pageDefaults struct{ size, max int64 }

func pagesOf(o *options) pageDefaults {
	return pageDefaults{size: int64(o.pageSize), max: int64(o.maxPageSize)}
}

// buildRequest turns a decoded request into the action's request message.
func buildRequest(a *action, r *request, pd pageDefaults) (*dynamicpb.Message, page, *errorReply) {
	if a.aip {
		return buildAIPRequest(a, r, pd) // aip.go
	}
	var pg page
	msg := dynamicpb.NewMessage(a.req)
	if r.data != nil && r.data[0] != '{' {
		return nil, pg, errDataNotObject
	}

	var skip func(k []byte) bool
	if a.kind == kindList {
		var e *errorReply
		if pg, e = readPage(r, pd); e != nil {
			return nil, pg, e
		}
		skip = isPageKey
	}

	// The data object fills the request's "data" message, or else the request itself.
	target := msg.ProtoReflect()
	if a.data != nil {
		target = msg.Mutable(a.data).Message()
	}
	fields := target.Descriptor().Fields()
	data, members := r.dataFor(a.pk != nil, skip, func(k []byte) bool { return fieldByKey(fields, k) != nil })
	if data != nil {
		if e := checkKnownFields(target.Descriptor(), members); e != nil {
			return nil, pg, e
		}
		if err := unmarshalJSON.Unmarshal(data, target.Interface()); err != nil {
			return nil, pg, invalidData(target.Descriptor(), err)
		}
	}

	if a.pk != nil {
		if e := setKey(msg, nil, a, r.pk); e != nil {
			return nil, pg, e
		}
	}

	if a.kind == kindPatch && a.mask != nil && data != nil {
		fm := msg.Mutable(a.mask).Message()
		paths := fm.Mutable(fm.Descriptor().Fields().ByName("paths")).List()
		for _, m := range members {
			if f := fieldByKey(fields, m.key); f != nil {
				paths.Append(protoreflect.ValueOfString(string(f.Name())))
			}
		}
	}

	if a.kind == kindList {
		// A number the field cannot hold is refused, never truncated: page 4294967297 in
		// an int32 would reach the backend as 1 while meta.page says 4294967297.
		if a.page != nil {
			if !fitsInt(a.page, pg.number) {
				return nil, pg, errInvalidPage
			}
			msg.Set(a.page, intValue(a.page, pg.number))
		}
		if a.pageSize != nil {
			if !fitsInt(a.pageSize, pg.size) {
				return nil, pg, errInvalidPageSz
			}
			msg.Set(a.pageSize, intValue(a.pageSize, pg.size))
		}
	}
	return msg, pg, nil
}

// fitsInt reports whether the integer field f can hold n.
func fitsInt(f protoreflect.FieldDescriptor, n int64) bool {
	switch f.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return n >= math.MinInt32 && n <= math.MaxInt32
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return n >= 0 && n <= math.MaxUint32
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return n >= 0
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

// readPage validates data.page and data.page_size; the request message gets data without
// them (isPageKey).
func readPage(r *request, pd pageDefaults) (page, *errorReply) {
	pg := page{number: 1, size: pd.size}
	var bad *errorReply
	for _, m := range r.members {
		k, v := m.key, m.value
		switch {
		case keyIs(k, "page"):
			if isNull(v) {
				continue
			}
			n, ok := jsonInt(v)
			if !ok || n < 1 {
				bad = errInvalidPage
			}
			pg.number = n
		case keyIs(k, "page_size") || keyIs(k, "pageSize"):
			if isNull(v) {
				continue
			}
			n, ok := jsonInt(v)
			if !ok || n < 1 {
				if bad == nil {
					bad = errInvalidPageSz
				}
			}
			pg.size = min(n, pd.max)
		}
	}
	return pg, bad
}

func isPageKey(k []byte) bool {
	return keyIs(k, "page") || keyIs(k, "page_size") || keyIs(k, "pageSize")
}

// checkKnownFields refuses top-level keys the message does not have, DRF-style per field.
func checkKnownFields(md protoreflect.MessageDescriptor, members []member) *errorReply {
	var e *errorReply
	fields := md.Fields()
	for _, m := range members {
		k := m.key
		if fieldByKey(fields, k) != nil {
			continue
		}
		if e == nil {
			e = &errorReply{Status: 400}
		}
		name, _ := jsonString(k)
		e.Fields = append(e.Fields, fieldError{Field: name, Messages: []string{"Unknown field."}})
	}
	return e
}

func fieldByKey(fields protoreflect.FieldDescriptors, key []byte) protoreflect.FieldDescriptor {
	name, ok := jsonString(key)
	if !ok {
		return nil
	}
	if f := fields.ByName(protoreflect.Name(name)); f != nil {
		return f
	}
	return fields.ByJSONName(name)
}

// invalidData turns a protojson error into a 400 reply: a field error when the error names
// a top-level field, else the message without the library's prefixes.
func invalidData(md protoreflect.MessageDescriptor, err error) *errorReply {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "proto:")
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "(line ") {
		if i := strings.Index(msg, "): "); i >= 0 {
			msg = msg[i+3:]
		}
	}
	// protojson says: invalid value for <kind> field <jsonName>: <value>
	if rest, ok := strings.CutPrefix(msg, "invalid value for "); ok {
		kind, rest, _ := strings.Cut(rest, " field ")
		name, _, _ := strings.Cut(rest, ":")
		if f := md.Fields().ByJSONName(name); f != nil {
			return &errorReply{Status: 400, Fields: []fieldError{{Field: string(f.Name()), Messages: []string{"Not a valid " + kind + "."}}}}
		}
	}
	return newError(400, "Invalid data: "+msg)
}

// intValue is n as f's value; fitsInt(f, n) must hold.
func intValue(f protoreflect.FieldDescriptor, n int64) protoreflect.Value {
	switch f.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(n))
	}
	return protoreflect.ValueOfInt64(n)
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

// appendMeta appends a list reply's meta: the page used and the response's other scalars.
func appendMeta(b []byte, a *action, resp *dynamicpb.Message, pg page, num bool) []byte {
	if a.pageToken != nil {
		return appendCursorMeta(b, a, resp, pg, num) // aip.go
	}
	b = append(b, `{"page":`...)
	b = strconv.AppendInt(b, pg.number, 10)
	b = append(b, `,"page_size":`...)
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

// setKey sets the request's key from pk, in msg or in the message reached through the
// fields of path. A detail action without a pk, and a pk the key's type cannot hold, are
// not found.
func setKey(msg protoreflect.Message, path []protoreflect.FieldDescriptor, a *action, pk []byte) *errorReply {
	if pk == nil {
		if a.detail {
			return errNotFound
		}
		return nil
	}
	v, ok := parseKey(a.pk, pk)
	if !ok {
		return errNotFound
	}
	for _, f := range path {
		msg = msg.Mutable(f).Message()
	}
	msg.Set(a.pk, v)
	return nil
}

// parseKey converts a pk as sent in a frame (a JSON string or number, raw) to the key field's
// value. ok is false when the pk cannot be read as the key's type.
func parseKey(f protoreflect.FieldDescriptor, raw []byte) (protoreflect.Value, bool) {
	s, ok := jsonScalarText(raw)
	if !ok {
		return protoreflect.Value{}, false
	}
	switch f.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err == nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return protoreflect.ValueOfInt64(n), err == nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		return protoreflect.ValueOfUint32(uint32(n)), err == nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		return protoreflect.ValueOfUint64(n), err == nil
	}
	return protoreflect.Value{}, false
}
