package bridge

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/wsbridge/wsbridge/internal/wirejson"
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

// buildRequest turns a decoded request into the action's request message: wire bytes
// appended to dst when the action goes through wirejson (a.wire), else a dynamicpb message.
func buildRequest(dst []byte, a *action, r *request, pd pageDefaults) (reqMsg, page, *errorReply) {
	rb := newReqBuilder(dst, a)
	var pg page
	var e *errorReply
	if a.aip {
		pg, e = buildAIPRequest(&rb, a, r, pd) // aip.go
	} else {
		pg, e = buildPlainRequest(&rb, a, r, pd)
	}
	return reqMsg{wire: rb.b, msg: rb.msg}, pg, e
}

// buildPlainRequest builds the request of an action following the bridge's conventions.
func buildPlainRequest(rb *reqBuilder, a *action, r *request, pd pageDefaults) (page, *errorReply) {
	var pg page
	if r.data != nil && r.data[0] != '{' {
		return pg, errDataNotObject
	}

	var skip func(k []byte) bool
	if a.kind == kindList {
		var e *errorReply
		if pg, e = readPage(r, pd); e != nil {
			return pg, e
		}
		skip = isPageKey
	}

	// The data object fills the request's "data" message, or else the request itself.
	target := a.req
	if a.data != nil {
		target = a.data.Message()
	}
	fields := target.Fields()
	data, members := dataFor(r, a.pk != nil, skip, func(k []byte) bool { return fieldByKey(fields, k) != nil })
	if data != nil {
		if e := checkKnownFields(target, members); e != nil {
			return pg, e
		}
	}
	// The data message is set even when data is absent: a backend may test its presence.
	if data != nil || a.data != nil {
		if e := rb.unmarshal(a.data, data); e != nil {
			return pg, e
		}
	}

	if a.pk != nil {
		if e := rb.setKey(nil, a, r.pk); e != nil {
			return pg, e
		}
	}

	if a.kind == kindPatch && a.mask != nil && data != nil {
		rb.beginMask(a.mask)
		for _, m := range members {
			if f := fieldByKey(fields, m.key); f != nil {
				rb.addPath(string(f.Name()))
			}
		}
		rb.endMask()
	}

	if a.kind == kindList {
		// A number the field cannot hold is refused, never truncated: page 4294967297 in
		// an int32 would reach the backend as 1 while meta.page says 4294967297.
		if a.page != nil {
			if !fitsInt(a.page, pg.number) {
				return pg, errInvalidPage
			}
			rb.set(nil, a.page, intValue(a.page, pg.number))
		}
		if a.pageSize != nil {
			if !fitsInt(a.pageSize, pg.size) {
				return pg, errInvalidPageSz
			}
			rb.set(nil, a.pageSize, intValue(a.pageSize, pg.size))
		}
	}
	return pg, nil
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

// usesWire reports whether a's request and response go through wirejson; the others (proto2
// required fields, closed enums, groups, extensions) keep protojson and dynamicpb. Decided
// once, when the catalog is built.
func usesWire(a *action) bool {
	return wirejson.Supported(a.req) == nil && wirejson.Supported(a.resp) == nil
}

// reqMsg is a built request: wire bytes when the action goes through wirejson, else a
// dynamicpb message (the protojson fallback).
type reqMsg struct {
	wire []byte
	msg  *dynamicpb.Message
}

// reqBuilder writes a request message. With wirejson it appends wire bytes: the wire format
// lets a later occurrence of a scalar field override an earlier one, and merges the
// occurrences of a message field, so the key, the update mask and the page are appended
// after data with the effect of setting them on a message. Otherwise it fills a dynamicpb
// message.
type reqBuilder struct {
	md     protoreflect.MessageDescriptor
	wire   bool
	b      []byte
	msg    *dynamicpb.Message
	maskAt int               // wire: where the update mask's length goes
	paths  protoreflect.List // fallback: the update mask's paths
}

func newReqBuilder(dst []byte, a *action) reqBuilder {
	if a.wire {
		return reqBuilder{md: a.req, wire: true, b: dst}
	}
	return reqBuilder{md: a.req, msg: dynamicpb.NewMessage(a.req)}
}

// unmarshal reads the JSON object data into the request, or into its message field f when
// f is not nil; f is set (present) even when data is nil.
func (rb *reqBuilder) unmarshal(f protoreflect.FieldDescriptor, data []byte) *errorReply {
	if !rb.wire {
		var target protoreflect.Message = rb.msg
		if f != nil {
			target = rb.msg.Mutable(f).Message()
		}
		if data == nil {
			return nil
		}
		if err := unmarshalJSON.Unmarshal(data, target.Interface()); err != nil {
			return invalidData(target.Descriptor(), err)
		}
		return nil
	}
	md, at := rb.md, -1
	if f != nil {
		md = f.Message()
		rb.b = protowire.AppendTag(rb.b, f.Number(), protowire.BytesType)
		at = len(rb.b)
		rb.b = append(rb.b, 0)
	}
	if data != nil {
		var err error
		if rb.b, err = (wirejson.UnmarshalOptions{}).Append(rb.b, md, data); err != nil {
			return wireDataError(err)
		}
	}
	if at >= 0 {
		rb.b = fixLength(rb.b, at)
	}
	return nil
}

// wireDataError turns a wirejson error into a 400 reply: a field error on the top-level
// field the error's path starts with (the rest of the path before the message), else the
// message.
func wireDataError(err error) *errorReply {
	var we *wirejson.Error
	if !errors.As(err, &we) {
		return newError(400, "Invalid data: "+err.Error())
	}
	if we.Field == "" {
		return newError(400, "Invalid data: "+we.Msg)
	}
	top, rest, nested := strings.Cut(we.Field, ".")
	msg := we.Msg
	if nested {
		msg = rest + ": " + msg
	}
	return &errorReply{Status: 400, Fields: []fieldError{{Field: top, Messages: []string{msg}}}}
}

// setKey sets the request's key from pk, in the request or in the message reached through
// the fields of path. A detail action without a pk, and a pk the key's type cannot hold,
// are not found.
func (rb *reqBuilder) setKey(path []protoreflect.FieldDescriptor, a *action, pk []byte) *errorReply {
	if pk == nil {
		if a.detail {
			return errNotFound
		}
		return nil
	}
	v, ok := parseKey(a.pk, pk)
	// A string that is not UTF-8 is no proto3 string's value, so no key's.
	if !ok || a.pk.Kind() == protoreflect.StringKind && !utf8.ValidString(v.String()) {
		return errNotFound
	}
	rb.set(path, a.pk, v)
	return nil
}

// set sets the singular field f to v, in the request or in the message reached through the
// fields of path.
func (rb *reqBuilder) set(path []protoreflect.FieldDescriptor, f protoreflect.FieldDescriptor, v protoreflect.Value) {
	if !rb.wire {
		var m protoreflect.Message = rb.msg
		for _, p := range path {
			m = m.Mutable(p).Message()
		}
		m.Set(f, v)
		return
	}
	var ats [8]int
	at := ats[:0]
	for _, p := range path {
		rb.b = protowire.AppendTag(rb.b, p.Number(), protowire.BytesType)
		at = append(at, len(rb.b))
		rb.b = append(rb.b, 0)
	}
	rb.b = appendWireValue(rb.b, f, v)
	for i := len(at) - 1; i >= 0; i-- {
		rb.b = fixLength(rb.b, at[i])
	}
}

// beginMask starts the update mask f; addPath adds a path to it, endMask ends it.
func (rb *reqBuilder) beginMask(f protoreflect.FieldDescriptor) {
	if !rb.wire {
		fm := rb.msg.Mutable(f).Message()
		rb.paths = fm.Mutable(fm.Descriptor().Fields().ByName("paths")).List()
		return
	}
	rb.b = protowire.AppendTag(rb.b, f.Number(), protowire.BytesType)
	rb.maskAt = len(rb.b)
	rb.b = append(rb.b, 0)
}

func (rb *reqBuilder) addPath(p string) {
	if !rb.wire {
		rb.paths.Append(protoreflect.ValueOfString(p))
		return
	}
	rb.b = protowire.AppendTag(rb.b, fieldMaskPaths, protowire.BytesType)
	rb.b = protowire.AppendString(rb.b, p)
}

func (rb *reqBuilder) endMask() {
	if rb.wire {
		rb.b = fixLength(rb.b, rb.maskAt)
	}
}

// fieldMaskPaths is the number of google.protobuf.FieldMask's paths.
const fieldMaskPaths = 1

// fixLength writes the length of what follows at, where one byte was reserved for it,
// moving what follows when the length needs more.
func fixLength(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 128 {
		b[at] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, k-1)...)
	copy(b[at+k:], b[at+1:len(b)-(k-1)])
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}

// appendWireValue appends field f with the singular value v in the wire format.
func appendWireValue(b []byte, f protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	num := f.Number()
	switch f.Kind() {
	case protoreflect.BoolKind:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), protowire.EncodeBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(v.Int()))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v.Uint())
	case protoreflect.EnumKind:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(int64(v.Enum())))
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), protowire.EncodeZigZag(v.Int()))
	case protoreflect.Fixed32Kind:
		return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), uint32(v.Uint()))
	case protoreflect.Sfixed32Kind:
		return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), uint32(int32(v.Int())))
	case protoreflect.FloatKind:
		return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), math.Float32bits(float32(v.Float())))
	case protoreflect.Fixed64Kind:
		return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v.Uint())
	case protoreflect.Sfixed64Kind:
		return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), uint64(v.Int()))
	case protoreflect.DoubleKind:
		return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), math.Float64bits(v.Float()))
	case protoreflect.StringKind:
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v.String())
	case protoreflect.BytesKind:
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v.Bytes())
	}
	return b
}
