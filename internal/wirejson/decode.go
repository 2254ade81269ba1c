package wirejson

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// maxDepth is protojson's and proto's default recursion limit.
const maxDepth = 10000

// Resolver finds the message type of an Any's type URL; protoregistry.GlobalTypes and
// dynamicpb.Types are Resolvers.
type Resolver interface {
	FindMessageByURL(url string) (protoreflect.MessageType, error)
}

// Error is a JSON text the message does not accept, or wire bytes that cannot be written
// as JSON.
type Error struct {
	// Field is the path of proto field names to the value at fault ("data.choices.votes");
	// empty when the fault is not in a field's value (a syntax error, a top-level value
	// that is not an object).
	Field string
	// Msg says what is wrong, as a sentence.
	Msg string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// UnmarshalOptions configures Unmarshal; the zero value resolves Any types in
// protoregistry.GlobalTypes.
type UnmarshalOptions struct {
	Resolver Resolver
}

// Unmarshal returns the wire encoding of the message of type md that the JSON object data
// denotes.
func Unmarshal(md protoreflect.MessageDescriptor, data []byte) ([]byte, error) {
	return UnmarshalOptions{}.Append(nil, md, data)
}

// Append appends to dst the wire encoding of the message of type md that the JSON object
// data denotes. On error dst is returned with unspecified bytes appended.
func (o UnmarshalOptions) Append(dst []byte, md protoreflect.MessageDescriptor, data []byte) ([]byte, error) {
	p := planFor(md)
	if p.whyNot != "" {
		return dst, &Error{Msg: p.whyNot}
	}
	d := decoders.Get().(*decoder)
	d.in, d.pos, d.res, d.depth = data, 0, o.Resolver, 0
	if d.res == nil {
		d.res = protoregistry.GlobalTypes
	}
	dst, err := d.message(dst, p, false)
	if err == nil {
		if d.ws(); d.pos != len(d.in) {
			err = d.syntax("unexpected data after the object")
		}
	}
	d.in, d.res, d.path = nil, nil, d.path[:0]
	decoders.Put(d)
	return dst, err
}

// decoders keeps the scratch buffers between calls.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

type decoder struct {
	in    []byte
	pos   int
	res   Resolver
	depth int
	path  []string // field names to the value being read, for errors
	str   []byte   // unescaped string content
	b64   []byte   // decoded bytes
	keys  []byte   // map keys seen, of the maps being read
	spans []int    // ends of the keys in keys
	nums  []uint64 // numeric map keys seen
}

func (d *decoder) syntax(msg string) error { return d.syntaxAt(d.pos, msg) }

func (d *decoder) syntaxAt(pos int, msg string) error {
	return &Error{Msg: "invalid JSON at offset " + strconv.Itoa(pos) + ": " + msg}
}

func (d *decoder) fieldErr(name, msg string) error {
	var b strings.Builder
	for _, p := range d.path {
		b.WriteString(p)
		b.WriteByte('.')
	}
	b.WriteString(name)
	return &Error{Field: b.String(), Msg: msg}
}

// valueErr is an error in the value of the field being read (the last of d.path).
func (d *decoder) valueErr(msg string) error {
	if len(d.path) == 0 {
		return &Error{Msg: msg}
	}
	return &Error{Field: strings.Join(d.path, "."), Msg: msg}
}

func (d *decoder) invalid(f *field, t tok) error {
	if t.kind == tkOther {
		return d.syntaxAt(t.pos, "unexpected "+strconv.Quote(string(t.raw)))
	}
	return d.valueErr("Not a valid " + kindName(f) + ".")
}

func kindName(f *field) string {
	switch f.kind {
	case protoreflect.EnumKind:
		return "choice"
	case protoreflect.MessageKind:
		return "object"
	}
	return f.kind.String()
}

// reserve appends room for a length of one byte and returns where it is.
func reserve(dst []byte) ([]byte, int) { return append(dst, 0), len(dst) }

// fixLength writes the length of what follows at, reserved with reserve, moving it when
// the length needs more than one byte.
func fixLength(dst []byte, at int) []byte {
	n := len(dst) - at - 1
	if n < 128 {
		dst[at] = byte(n)
		return dst
	}
	k := protowire.SizeVarint(uint64(n))
	dst = append(dst, make([]byte, k-1)...)
	copy(dst[at+k:], dst[at+1:len(dst)-(k-1)])
	protowire.AppendVarint(dst[:at], uint64(n))
	return dst
}

func (d *decoder) enter() error {
	if d.depth++; d.depth > maxDepth {
		return d.valueErr("exceeded max recursion depth")
	}
	return nil
}

// message appends the fields of the message (not its tag or length) read from the JSON.
func (d *decoder) message(dst []byte, m *message, skipType bool) ([]byte, error) {
	if err := d.enter(); err != nil {
		return dst, err
	}
	defer func() { d.depth-- }()
	if m.wkt != wktNone {
		return d.wellKnown(dst, m)
	}
	t, err := d.value()
	if err != nil {
		return dst, err
	}
	if t.kind != tkObject {
		return dst, d.invalidObject(t)
	}
	var seenArr [4]uint64
	seen := seenArr[:]
	if len(m.fields) > 256 {
		seen = make([]uint64, (len(m.fields)+63)/64)
	}
	var oneofArr [2]uint64
	oneofs := oneofArr[:]
	if m.oneofs > 128 {
		oneofs = make([]uint64, (m.oneofs+63)/64)
	}
	first := true
	for {
		name, _, done, err := d.member(&first)
		if err != nil || done {
			return dst, err
		}
		if skipType && string(name) == "@type" {
			if _, err := d.value(); err != nil { // a string, findTypeURL checked
				return dst, err
			}
			continue
		}
		i, ok := m.byName[unsafeString(name)]
		if !ok {
			return dst, d.fieldErr(string(name), "Unknown field.")
		}
		f := &m.fields[i]
		if seen[i/64]&(1<<(i%64)) != 0 {
			return dst, d.fieldErr(f.name, "Duplicate field.")
		}
		seen[i/64] |= 1 << (i % 64)
		if d.peek() == 'n' && !f.isValue && (f.enum == nil || !f.enum.null) {
			if t, err := d.value(); err != nil || t.kind != tkNull {
				if err == nil {
					err = d.fieldErr(f.name, "Not a valid "+kindName(f)+".")
				}
				return dst, err
			}
			continue
		}
		d.path = append(d.path, f.name)
		switch {
		case f.list:
			dst, err = d.list(dst, f)
		case f.isMap:
			dst, err = d.mapField(dst, f)
		default:
			if f.oneof >= 0 {
				o := f.oneof
				if oneofs[o/64]&(1<<(o%64)) != 0 {
					d.path = d.path[:len(d.path)-1]
					return dst, d.fieldErr(f.name, "Only one field of "+string(f.fd.ContainingOneof().Name())+" may be set.")
				}
				oneofs[o/64] |= 1 << (o % 64)
			}
			dst, err = d.singular(dst, f, f.presence)
		}
		if err != nil {
			return dst, err
		}
		d.path = d.path[:len(d.path)-1]
	}
}

func (d *decoder) invalidObject(t tok) error {
	if t.kind == tkOther {
		return d.syntaxAt(t.pos, "unexpected "+strconv.Quote(string(t.raw)))
	}
	return d.valueErr("Not a valid object.")
}

// singular appends one field value with its tag; a zero scalar is left out unless always.
func (d *decoder) singular(dst []byte, f *field, always bool) ([]byte, error) {
	if f.msg != nil {
		dst = protowire.AppendTag(dst, f.num, protowire.BytesType)
		dst, at := reserve(dst)
		dst, err := d.message(dst, f.msg, false)
		if err != nil {
			return dst, err
		}
		return fixLength(dst, at), nil
	}
	u, b, err := d.scalar(f)
	if err != nil {
		return dst, err
	}
	if !always && u == 0 && len(b) == 0 {
		return dst, nil
	}
	dst = protowire.AppendTag(dst, f.num, f.wt)
	return appendRaw(dst, f, u, b), nil
}

// appendRaw appends a scalar's value (no tag): u for numbers as their wire bits, b for
// strings and bytes.
func appendRaw(dst []byte, f *field, u uint64, b []byte) []byte {
	switch f.wt {
	case protowire.VarintType:
		return protowire.AppendVarint(dst, u)
	case protowire.Fixed32Type:
		return protowire.AppendFixed32(dst, uint32(u))
	case protowire.Fixed64Type:
		return protowire.AppendFixed64(dst, u)
	}
	return protowire.AppendBytes(dst, b)
}

// scalar reads a scalar value: for numbers u holds what the wire carries (varint value or
// fixed bits), for strings and bytes b holds the content (valid until the next read).
func (d *decoder) scalar(f *field) (u uint64, b []byte, err error) {
	t, err := d.value()
	if err != nil {
		return 0, nil, err
	}
	switch f.kind {
	case protoreflect.BoolKind:
		switch t.kind {
		case tkTrue:
			return 1, nil, nil
		case tkFalse:
			return 0, nil, nil
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		bits := 64
		if f.kind == protoreflect.Int32Kind || f.kind == protoreflect.Sint32Kind || f.kind == protoreflect.Sfixed32Kind {
			bits = 32
		}
		if raw, ok := numberOf(t); ok {
			if n, ok := parseInt(raw, bits); ok {
				switch f.kind {
				case protoreflect.Sint32Kind:
					return protowire.EncodeZigZag(n) & math.MaxUint32, nil, nil
				case protoreflect.Sint64Kind:
					return protowire.EncodeZigZag(n), nil, nil
				case protoreflect.Sfixed32Kind:
					return uint64(uint32(int32(n))), nil, nil
				}
				return uint64(n), nil, nil
			}
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		bits := 64
		if f.kind == protoreflect.Uint32Kind || f.kind == protoreflect.Fixed32Kind {
			bits = 32
		}
		if raw, ok := numberOf(t); ok {
			var buf [24]byte
			if s, ok := intString(&buf, raw); ok {
				if n, err := strconv.ParseUint(unsafeString(s), 10, bits); err == nil {
					return n, nil, nil
				}
			}
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		bits := 64
		if f.kind == protoreflect.FloatKind {
			bits = 32
		}
		if v, ok := floatOf(t, bits); ok {
			if bits == 32 {
				return uint64(math.Float32bits(float32(v))), nil, nil
			}
			return math.Float64bits(v), nil, nil
		}
	case protoreflect.StringKind:
		if t.kind == tkString {
			return 0, t.str, nil
		}
	case protoreflect.BytesKind:
		if t.kind == tkString {
			s := t.str
			enc := base64.StdEncoding
			for _, c := range s {
				if c == '-' || c == '_' {
					enc = base64.URLEncoding
					break
				}
			}
			if len(s)%4 != 0 {
				enc = enc.WithPadding(base64.NoPadding)
			}
			if cap(d.b64) < enc.DecodedLen(len(s)) {
				d.b64 = make([]byte, enc.DecodedLen(len(s)))
			}
			n, err := enc.Decode(d.b64[:cap(d.b64)], s)
			if err == nil {
				return 0, d.b64[:n], nil
			}
		}
	case protoreflect.EnumKind:
		switch t.kind {
		case tkString:
			if n, ok := f.enum.byName[unsafeString(t.str)]; ok {
				return uint64(int64(n)), nil, nil
			}
		case tkNumber:
			if n, ok := parseInt(t.raw, 32); ok {
				return uint64(n), nil, nil
			}
		case tkNull:
			if f.enum.null {
				return 0, nil, nil
			}
		}
	}
	return 0, nil, d.invalid(f, t)
}

// numberOf is the number a token denotes, as protojson reads integers: a JSON number, or a
// string holding exactly one.
func numberOf(t tok) ([]byte, bool) {
	switch t.kind {
	case tkNumber:
		return t.raw, true
	case tkString:
		if n, ok := parseNumber(t.str); ok && n == len(t.str) {
			return t.str, true
		}
	}
	return nil, false
}

func parseInt(raw []byte, bits int) (int64, bool) {
	var buf [24]byte
	s, ok := intString(&buf, raw)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(unsafeString(s), 10, bits)
	return n, err == nil
}

func floatOf(t tok, bits int) (float64, bool) {
	raw := t.raw
	switch t.kind {
	case tkNumber:
	case tkString:
		switch string(t.str) {
		case "NaN":
			return math.NaN(), true
		case "Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
		var ok bool
		if raw, ok = numberOf(t); !ok {
			return 0, false
		}
	default:
		return 0, false
	}
	v, err := strconv.ParseFloat(unsafeString(raw), bits)
	return v, err == nil
}

func (d *decoder) list(dst []byte, f *field) ([]byte, error) {
	t, err := d.value()
	if err != nil {
		return dst, err
	}
	if t.kind != tkArray {
		return dst, d.invalidList(t)
	}
	start := len(dst)
	at := 0
	if f.packed {
		dst = protowire.AppendTag(dst, f.num, protowire.BytesType)
		dst, at = reserve(dst)
	}
	first, count := true, 0
	for {
		done, err := d.element(&first)
		if err != nil {
			return dst, err
		}
		if done {
			break
		}
		count++
		if f.packed {
			u, b, err := d.scalar(f)
			if err != nil {
				return dst, err
			}
			dst = appendRaw(dst, f, u, b)
			continue
		}
		if dst, err = d.singular(dst, f, true); err != nil {
			return dst, err
		}
	}
	if f.packed {
		if count == 0 {
			return dst[:start], nil
		}
		dst = fixLength(dst, at)
	}
	return dst, nil
}

func (d *decoder) invalidList(t tok) error {
	if t.kind == tkOther {
		return d.syntaxAt(t.pos, "unexpected "+strconv.Quote(string(t.raw)))
	}
	return d.valueErr("Not a valid list.")
}

func (d *decoder) mapField(dst []byte, f *field) ([]byte, error) {
	t, err := d.value()
	if err != nil {
		return dst, err
	}
	if t.kind != tkObject {
		return dst, d.invalidObject(t)
	}
	keys0, spans0, nums0 := len(d.keys), len(d.spans), len(d.nums)
	defer func() { d.keys, d.spans, d.nums = d.keys[:keys0], d.spans[:spans0], d.nums[:nums0] }()
	var set map[string]struct{} // for large maps
	first := true
	for {
		name, _, done, err := d.member(&first)
		if err != nil || done {
			return dst, err
		}
		k := f.mkey
		var u uint64
		ok := true
		switch k.kind {
		case protoreflect.StringKind:
			dup := false
			if set != nil {
				_, dup = set[unsafeString(name)]
			} else {
				s := keys0
				for _, e := range d.spans[spans0:] {
					if string(d.keys[s:e]) == string(name) {
						dup = true
						break
					}
					s = e
				}
			}
			if dup {
				return dst, d.valueErr("Duplicate map key " + strconv.Quote(string(name)) + ".")
			}
			if set != nil {
				set[string(name)] = struct{}{}
			} else if len(d.spans)-spans0 < 32 {
				d.keys = append(d.keys, name...)
				d.spans = append(d.spans, len(d.keys))
			} else {
				set = make(map[string]struct{}, 64)
				s := keys0
				for _, e := range d.spans[spans0:] {
					set[string(d.keys[s:e])] = struct{}{}
					s = e
				}
				set[string(name)] = struct{}{}
			}
		case protoreflect.BoolKind:
			switch string(name) {
			case "true":
				u = 1
			case "false":
			default:
				ok = false
			}
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			n, err := strconv.ParseInt(unsafeString(name), 10, 32)
			ok = err == nil
			u = uint64(n)
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			n, err := strconv.ParseInt(unsafeString(name), 10, 64)
			ok = err == nil
			u = uint64(n)
		default: // unsigned
			bits := 64
			if k.kind == protoreflect.Uint32Kind || k.kind == protoreflect.Fixed32Kind {
				bits = 32
			}
			u, err = strconv.ParseUint(unsafeString(name), 10, bits)
			ok = err == nil
		}
		if !ok {
			return dst, d.valueErr("Not a valid " + k.kind.String() + " map key: " + strconv.Quote(string(name)) + ".")
		}
		if k.kind != protoreflect.StringKind {
			for _, n := range d.nums[nums0:] {
				if n == u {
					return dst, d.valueErr("Duplicate map key " + strconv.Quote(string(name)) + ".")
				}
			}
			d.nums = append(d.nums, u)
		}
		dst = protowire.AppendTag(dst, f.num, protowire.BytesType)
		var at int
		dst, at = reserve(dst)
		dst = protowire.AppendTag(dst, 1, k.wt)
		switch k.kind {
		case protoreflect.StringKind:
			dst = protowire.AppendBytes(dst, name)
		case protoreflect.Sint32Kind:
			dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(int32(u)))&math.MaxUint32)
		case protoreflect.Sint64Kind:
			dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(u)))
		default:
			dst = appendRaw(dst, k, u, nil)
		}
		if dst, err = d.singular(dst, f.mval, true); err != nil {
			return dst, err
		}
		dst = fixLength(dst, at)
	}
}

// wellKnown reads a well-known type's own JSON form.
func (d *decoder) wellKnown(dst []byte, m *message) ([]byte, error) {
	switch m.wkt {
	case wktWrapper:
		return d.singular(dst, &m.fields[0], false)
	case wktStruct, wktListValue:
		f := &m.fields[0]
		if m.wkt == wktStruct {
			return d.mapField(dst, f)
		}
		return d.list(dst, f)
	case wktValue:
		return d.knownValue(dst, m)
	case wktEmpty:
		t, err := d.value()
		if err != nil {
			return dst, err
		}
		if t.kind != tkObject {
			return dst, d.invalidObject(t)
		}
		first := true
		name, _, done, err := d.member(&first)
		if err != nil || done {
			return dst, err
		}
		return dst, d.fieldErr(string(name), "Unknown field.")
	case wktTimestamp, wktDuration, wktFieldMask:
		t, err := d.value()
		if err != nil {
			return dst, err
		}
		if t.kind != tkString {
			return dst, d.invalidWKT(m, t)
		}
		s := unsafeString(t.str)
		switch m.wkt {
		case wktTimestamp:
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return dst, d.invalidWKT(m, t)
			}
			secs := tm.Unix()
			if secs < minTimestampSeconds || secs > maxTimestampSeconds {
				return dst, d.valueErr("Timestamp out of range.")
			}
			i := strings.LastIndexByte(s, '.')
			j := strings.LastIndexAny(s, "Z-+")
			if i >= 0 && j >= i && j-i > len(".999999999") {
				return dst, d.invalidWKT(m, t)
			}
			return appendSecondsNanos(dst, secs, int32(tm.Nanosecond())), nil
		case wktDuration:
			secs, nanos, ok := parseDuration(s)
			if !ok {
				return dst, d.invalidWKT(m, t)
			}
			if secs < -maxSecondsInDuration || secs > maxSecondsInDuration {
				return dst, d.valueErr("Duration out of range.")
			}
			return appendSecondsNanos(dst, secs, nanos), nil
		default:
			s = strings.TrimSpace(s)
			if s == "" {
				return dst, nil
			}
			for s0 := range strings.SplitSeq(s, ",") {
				if strings.Contains(s0, "_") {
					return dst, d.valueErr("Not a valid field mask path: " + strconv.Quote(s0) + ".")
				}
				dst = protowire.AppendTag(dst, 1, protowire.BytesType)
				var at int
				dst, at = reserve(dst)
				p := len(dst)
				for i := 0; i < len(s0); i++ {
					c := s0[i]
					if 'A' <= c && c <= 'Z' {
						dst = append(dst, '_', c+'a'-'A')
					} else {
						dst = append(dst, c)
					}
				}
				if !protoreflect.FullName(dst[p:]).IsValid() {
					return dst, d.valueErr("Not a valid field mask path: " + strconv.Quote(s0) + ".")
				}
				dst = fixLength(dst, at)
			}
			return dst, nil
		}
	case wktAny:
		return d.anyValue(dst)
	}
	return dst, errors.New("wirejson: unknown well-known type")
}

func (d *decoder) invalidWKT(m *message, t tok) error {
	if t.kind == tkOther {
		return d.syntaxAt(t.pos, "unexpected "+strconv.Quote(string(t.raw)))
	}
	return d.valueErr("Not a valid " + string(m.md.Name()) + ".")
}

func appendSecondsNanos(dst []byte, secs int64, nanos int32) []byte {
	if secs != 0 {
		dst = protowire.AppendTag(dst, 1, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(secs))
	}
	if nanos != 0 {
		dst = protowire.AppendTag(dst, 2, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(nanos)))
	}
	return dst
}

func (d *decoder) knownValue(dst []byte, m *message) ([]byte, error) {
	switch d.peek() {
	case '{':
		dst = protowire.AppendTag(dst, 5, protowire.BytesType)
		dst, at := reserve(dst)
		dst, err := d.mapField(dst, &m.fields[4].msg.fields[0])
		if err != nil {
			return dst, err
		}
		return fixLength(dst, at), nil
	case '[':
		dst = protowire.AppendTag(dst, 6, protowire.BytesType)
		dst, at := reserve(dst)
		dst, err := d.list(dst, &m.fields[5].msg.fields[0])
		if err != nil {
			return dst, err
		}
		return fixLength(dst, at), nil
	}
	t, err := d.value()
	if err != nil {
		return dst, err
	}
	switch t.kind {
	case tkNull:
		return append(dst, 1<<3|byte(protowire.VarintType), 0), nil
	case tkTrue, tkFalse:
		dst = append(dst, 4<<3|byte(protowire.VarintType))
		if t.kind == tkTrue {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case tkNumber:
		v, err := strconv.ParseFloat(unsafeString(t.raw), 64)
		if err != nil {
			return dst, d.valueErr("Not a valid number.")
		}
		dst = append(dst, 2<<3|byte(protowire.Fixed64Type))
		return protowire.AppendFixed64(dst, math.Float64bits(v)), nil
	case tkString:
		dst = append(dst, 3<<3|byte(protowire.BytesType))
		return protowire.AppendBytes(dst, t.str), nil
	}
	return dst, d.invalidObject(t)
}

// anyValue reads an Any: "@type" names the message, whose fields (or, for a well-known
// type, "value") follow. The value bytes are those proto's deterministic Marshal writes for
// the message, as protojson sets them.
func (d *decoder) anyValue(dst []byte) ([]byte, error) {
	start := d.pos
	t, err := d.value()
	if err != nil {
		return dst, err
	}
	if t.kind != tkObject {
		return dst, d.invalidObject(t)
	}
	// First find "@type", wherever it is.
	var typeURL string
	fields, first := 0, true
	for {
		name, _, done, err := d.member(&first)
		if err != nil {
			return dst, err
		}
		if done {
			break
		}
		fields++
		if string(name) != "@type" {
			if err := d.skip(0); err != nil {
				return dst, err
			}
			continue
		}
		if typeURL != "" {
			return dst, d.valueErr(`Duplicate "@type" field.`)
		}
		t, err := d.value()
		if err != nil {
			return dst, err
		}
		if t.kind != tkString {
			return dst, d.valueErr(`The "@type" field is not a string.`)
		}
		if len(t.str) == 0 {
			return dst, d.valueErr(`The "@type" field is empty.`)
		}
		typeURL = string(t.str)
	}
	if typeURL == "" {
		if fields > 0 {
			return dst, d.valueErr(`Missing "@type" field.`)
		}
		return dst, nil // {}: an empty Any
	}
	end := d.pos
	d.pos = start
	mt, err := d.res.FindMessageByURL(typeURL)
	if err != nil {
		return dst, d.valueErr("Unknown type " + strconv.Quote(typeURL) + ".")
	}
	em := planFor(mt.Descriptor())
	if em.whyNot != "" {
		return dst, d.valueErr(em.whyNot)
	}
	var value []byte
	if em.wkt != wktNone {
		d.value() // '{'
		found, first := false, true
		for {
			name, _, done, err := d.member(&first)
			if err != nil {
				return dst, err
			}
			if done {
				break
			}
			switch string(name) {
			case "@type":
				d.value()
			case "value":
				if found {
					return dst, d.valueErr(`Duplicate "value" field.`)
				}
				if value, err = d.wellKnown(value, em); err != nil {
					return dst, err
				}
				found = true
			default:
				return dst, d.fieldErr(string(name), "Unknown field.")
			}
		}
		if !found && em.wkt != wktEmpty {
			return dst, d.valueErr(`Missing "value" field.`)
		}
	} else if value, err = d.message(nil, em, true); err != nil {
		return dst, err
	}
	if d.pos != end {
		return dst, d.syntax("internal error: Any read twice differently")
	}
	msg := mt.New().Interface()
	// No recursion limit here: protojson checked the depth while reading the JSON.
	if err := (proto.UnmarshalOptions{AllowPartial: true, RecursionLimit: math.MaxInt32}).Unmarshal(value, msg); err != nil {
		return dst, d.valueErr("Invalid value: " + err.Error())
	}
	if value, err = (proto.MarshalOptions{AllowPartial: true, Deterministic: true}).Marshal(msg); err != nil {
		return dst, d.valueErr("Invalid value: " + err.Error())
	}
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, typeURL)
	if len(value) > 0 {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendBytes(dst, value)
	}
	return dst, nil
}

const (
	maxTimestampSeconds  = 253402300799
	minTimestampSeconds  = -62135596800
	maxSecondsInDuration = 315576000000
	secondsInNanos       = 999999999
)

// parseDuration is protojson's: [-+]digits[.digits]s, at most 9 fraction digits.
func parseDuration(b string) (int64, int32, bool) {
	size := len(b)
	if size < 2 || b[size-1] != 's' {
		return 0, 0, false
	}
	b = b[:size-1]
	neg := false
	switch b[0] {
	case '-':
		neg = true
		b = b[1:]
	case '+':
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, 0, false
	}
	var intp string
	switch {
	case b[0] == '0':
		b = b[1:]
	case '1' <= b[0] && b[0] <= '9':
		n := 1
		for n < len(b) && '0' <= b[n] && b[n] <= '9' {
			n++
		}
		intp, b = b[:n], b[n:]
	case b[0] == '.':
	default:
		return 0, 0, false
	}
	hasFrac := false
	var frac [9]byte
	if len(b) > 0 {
		if b[0] != '.' {
			return 0, 0, false
		}
		b = b[1:]
		n := 0
		for len(b) > 0 && n < 9 && '0' <= b[0] && b[0] <= '9' {
			frac[n] = b[0]
			n++
			b = b[1:]
		}
		if len(b) > 0 {
			return 0, 0, false
		}
		for i := n; i < 9; i++ {
			frac[i] = '0'
		}
		hasFrac = true
	}
	var secs int64
	if len(intp) > 0 {
		var err error
		if secs, err = strconv.ParseInt(intp, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	var nanos int64
	if hasFrac {
		for _, c := range frac {
			nanos = nanos*10 + int64(c-'0')
		}
	}
	if neg {
		if secs > 0 {
			secs = -secs
		}
		if nanos > 0 {
			nanos = -nanos
		}
	}
	return secs, int32(nanos), true
}
