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
	data, members := dataFor(r, a.pk != nil, skip, func(k []byte) bool { return fieldByKey(fields, k) != nil })
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

// dataFor is data as the request message gets it, and its members: without the members
// skip names (the page members a list reads itself), and without data.pk when it was taken
// as the request's key and has (the fields of the message data fills) has no field of that
// name: the key then reaches the backend through the key field. A data.pk the action cannot
// use stays, and is refused as an unknown field. data itself is returned when nothing is
// left out; nil when only page members were.
func dataFor(r *request, usesKey bool, skip func(k []byte) bool, has func(k []byte) bool) ([]byte, []member) {
	if r.members == nil {
		return r.data, nil
	}
	dropPK := r.dataPK && usesKey
	drop := func(k []byte) bool {
		return (skip != nil && skip(k)) || (dropPK && keyIs(k, "pk") && !has(k))
	}
	n := 0
	for _, m := range r.members {
		if drop(m.key) {
			n++
		}
	}
	if n == 0 {
		return r.data, r.members
	}
	var out []byte
	kept := make([]member, 0, len(r.members)-n)
	for _, m := range r.members {
		if !drop(m.key) {
			out = appendMember(out, m.key, m.value)
			kept = append(kept, m)
		}
	}
	if out == nil {
		if skip != nil {
			return nil, nil // only page members: as if there were no data
		}
		return []byte("{}"), kept
	}
	return append(out, '}'), kept
}

// appendMember appends k: v to the object being built in obj, opening it when obj is nil.
func appendMember(obj, k, v []byte) []byte {
	if obj == nil {
		obj = append(obj, '{')
	} else {
		obj = append(obj, ',')
	}
	return append(append(append(obj, k...), ':'), v...)
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
