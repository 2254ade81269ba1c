package wirejson

import (
	"encoding/base64"
	"errors"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// maxSafeInt is the largest integer a JSON number carries exactly in JavaScript (2^53−1).
const maxSafeInt = 1<<53 - 1

// MarshalOptions configures Marshal; the zero value writes protojson's output and resolves
// Any types in protoregistry.GlobalTypes.
type MarshalOptions struct {
	Resolver Resolver
	// Int64AsNumber writes 64-bit integers within ±(2^53−1) as JSON numbers rather than
	// strings (larger ones stay strings, so no JavaScript client rounds them). It applies
	// to fields, list elements, map values and Int64Value/UInt64Value, not inside an Any.
	Int64AsNumber bool
}

// Marshal returns the JSON of wire, a message of type md, as protojson.Marshal writes it with
// UseProtoNames and EmitUnpopulated, without spaces.
func Marshal(md protoreflect.MessageDescriptor, wire []byte) ([]byte, error) {
	return MarshalOptions{}.Append(nil, md, wire)
}

// Append appends the JSON of wire, a message of type md, to dst.
func (o MarshalOptions) Append(dst []byte, md protoreflect.MessageDescriptor, wire []byte) ([]byte, error) {
	p := planFor(md)
	if p.whyNot != "" {
		return dst, &Error{Msg: p.whyNot}
	}
	e := encoders.Get().(*encoder)
	e.out, e.res, e.num = dst, o.Resolver, o.Int64AsNumber
	if e.res == nil {
		e.res = protoregistry.GlobalTypes
	}
	err := e.message(p, wire, "")
	out := e.out
	// Drop the references to the caller's bytes, as far as this call used the scratch.
	clear(e.occ[:e.occMax])
	clear(e.ents[:e.entsMax])
	e.out, e.res, e.occ, e.ents, e.occMax, e.entsMax = nil, nil, e.occ[:0], e.ents[:0], 0, 0
	encoders.Put(e)
	return out, err
}

// encoders keeps the scratch slices between calls.
var encoders = sync.Pool{New: func() any { return new(encoder) }}

var errDecode = errors.New("cannot parse invalid wire-format data")

type encoder struct {
	out   []byte
	res   Resolver
	num   bool
	depth int
	occ   []occ   // field occurrences of the messages being written
	ents  []entry // map entries of the maps being written
	// The most of occ and ents this call used.
	occMax, entsMax int
}

// occ is one occurrence of a known field in the wire bytes: u is a varint or fixed value,
// b a length-delimited payload.
type occ struct {
	fi  int32
	seq int32
	wt  protowire.Type
	u   uint64
	b   []byte
}

type entry struct {
	k   uint64
	ks  []byte
	v   uint64
	vb  []byte
	seq int
}

func invalidUTF8(f *field) error {
	return &Error{Field: f.name, Msg: "invalid UTF-8 in string"}
}

// scan records the occurrences of m's fields in b (in e.occ from base, sorted by field
// index, stably) and checks what proto.Unmarshal checks of them.
func (e *encoder) scan(m *message, b []byte) error {
	seq := int32(0)
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errDecode
		}
		b = b[n:]
		i := m.byNumber(num)
		var f *field
		if i >= 0 {
			f = &m.fields[i]
		}
		if f == nil || (wt != f.wt && !(f.packable && wt == protowire.BytesType)) || wt == protowire.StartGroupType {
			n = protowire.ConsumeFieldValue(num, wt, b)
			if n < 0 {
				return errDecode
			}
			b = b[n:]
			continue
		}
		o := occ{fi: int32(i), seq: seq, wt: wt}
		seq++
		switch wt {
		case protowire.VarintType:
			o.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			o.u = uint64(v)
		case protowire.Fixed64Type:
			o.u, n = protowire.ConsumeFixed64(b)
		default:
			o.b, n = protowire.ConsumeBytes(b)
			if n >= 0 && f.kind == protoreflect.StringKind && !utf8.Valid(o.b) {
				return invalidUTF8(f)
			}
		}
		if n < 0 {
			return errDecode
		}
		b = b[n:]
		e.occ = append(e.occ, o)
		e.occMax = max(e.occMax, len(e.occ))
	}
	return nil
}

// message writes the message in b; typeURL, when set, is written first as "@type".
func (e *encoder) message(m *message, b []byte, typeURL string) error {
	if e.depth++; e.depth > maxDepth {
		return errors.New("exceeded maximum recursion depth")
	}
	defer func() { e.depth-- }()
	base := len(e.occ)
	defer func() { e.occ = e.occ[:base] }()
	if err := e.scan(m, b); err != nil {
		return err
	}
	occs := e.occ[base:]
	sorted := true
	for i := 1; i < len(occs); i++ {
		if occs[i].fi < occs[i-1].fi {
			sorted = false
			break
		}
	}
	if !sorted {
		slices.SortStableFunc(occs, func(a, b occ) int { return int(a.fi) - int(b.fi) })
	}
	// The member each oneof ends with, and from which occurrence on it was set (a message
	// member is the merge of its occurrences since).
	var lastArr [8]int32
	var runArr [8]int32
	last, run := lastArr[:0], runArr[:0]
	if m.oneofs > 0 {
		if m.oneofs > len(lastArr) {
			last, run = make([]int32, m.oneofs), make([]int32, m.oneofs)
		} else {
			last, run = lastArr[:m.oneofs], runArr[:m.oneofs]
		}
		for i := range last {
			last[i] = -1
		}
		// Walk the occurrences in wire order: seq order within a field is kept by the
		// stable sort, and across fields we compare seq.
		for i := range last {
			var best int32 = -1
			bestField := int32(-1)
			for _, o := range occs {
				f := &m.fields[o.fi]
				if f.oneof == i && o.seq > best {
					best, bestField = o.seq, o.fi
				}
			}
			last[i] = bestField
			if bestField >= 0 {
				// The member was set from the first of its occurrences after the last
				// occurrence of another member.
				var other int32 = -1
				for _, o := range occs {
					if f := &m.fields[o.fi]; f.oneof == i && o.fi != bestField && o.seq > other {
						other = o.seq
					}
				}
				run[i] = other
			}
		}
	}
	switch m.wkt {
	case wktNone:
	case wktEmpty:
		if typeURL == "" {
			e.out = append(e.out, "{}"...)
			return nil
		}
	case wktAny:
		return e.anyMessage(m, occs)
	default:
		return e.wellKnown(m, occs, last, run)
	}
	e.out = append(e.out, '{')
	comma := false
	if typeURL != "" {
		e.out = append(e.out, `"@type":`...)
		e.out = appendString(e.out, typeURL)
		comma = true
	}
	j := 0
	for i := range m.fields {
		f := &m.fields[i]
		k := j
		for k < len(occs) && int(occs[k].fi) == i {
			k++
		}
		fo := occs[j:k]
		j = k
		if f.oneof >= 0 && !f.synthetic {
			if last[f.oneof] != int32(i) {
				if err := e.validateAll(f, fo); err != nil {
					return err
				}
				continue
			}
		} else if len(fo) == 0 && !f.list && !f.isMap {
			if f.synthetic {
				continue
			}
			if comma {
				e.out = append(e.out, ',')
			}
			comma = true
			e.out = append(e.out, f.key...)
			if f.presence { // unset: null, as protojson writes unset messages and proto2 optionals
				e.out = append(e.out, "null"...)
			} else {
				e.zero(f, m.inGoogle)
			}
			continue
		}
		if comma {
			e.out = append(e.out, ',')
		}
		comma = true
		e.out = append(e.out, f.key...)
		var err error
		switch {
		case f.list:
			err = e.list(f, fo, m.inGoogle)
		case f.isMap:
			err = e.mapValue(f, fo, m.inGoogle)
		case f.msg != nil:
			var r int32 = -1
			if f.oneof >= 0 && !f.synthetic {
				r = run[f.oneof]
			}
			err = e.merged(f, fo, r)
		default:
			e.scalar(f, fo[len(fo)-1].u, fo[len(fo)-1].b, m.inGoogle)
		}
		if err != nil {
			return err
		}
	}
	e.out = append(e.out, '}')
	return nil
}

// merged writes a message field: the merge of its occurrences after seq from.
func (e *encoder) merged(f *field, fo []occ, from int32) error {
	n := 0
	var one []byte
	for _, o := range fo {
		if o.seq > from {
			n++
			one = o.b
		} else if err := e.validate(f.msg, o.b); err != nil {
			return err
		}
	}
	if n > 1 {
		// Each occurrence must be a message on its own, as proto.Unmarshal reads them: two
		// cut halves of a field would join into one that parses.
		one = nil
		for _, o := range fo {
			if o.seq > from {
				if err := e.validate(f.msg, o.b); err != nil {
					return err
				}
				one = append(one, o.b...)
			}
		}
	}
	return e.message(f.msg, one, "")
}

// validateAll checks the occurrences of a field that will not be written.
func (e *encoder) validateAll(f *field, fo []occ) error {
	if f.msg == nil {
		return nil
	}
	for _, o := range fo {
		if err := e.validate(f.msg, o.b); err != nil {
			return err
		}
	}
	return nil
}

// validate checks b as proto.Unmarshal would, without writing it.
func (e *encoder) validate(m *message, b []byte) error {
	if e.depth++; e.depth > maxDepth {
		return errors.New("exceeded maximum recursion depth")
	}
	defer func() { e.depth-- }()
	base := len(e.occ)
	defer func() { e.occ = e.occ[:base] }()
	if err := e.scan(m, b); err != nil {
		return err
	}
	for i := base; i < len(e.occ); i++ {
		o := e.occ[i]
		f := &m.fields[o.fi]
		switch {
		case f.isMap:
			if err := e.validateEntry(f, o.b); err != nil {
				return err
			}
		case f.msg != nil:
			if err := e.validate(f.msg, o.b); err != nil {
				return err
			}
		case f.list && o.wt == protowire.BytesType && f.packable:
			if err := eachPacked(f, o.b, func(uint64) {}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *encoder) validateEntry(f *field, b []byte) error {
	if e.depth++; e.depth > maxDepth {
		return errors.New("exceeded maximum recursion depth")
	}
	defer func() { e.depth-- }()
	var ent entry
	var vals [][]byte
	if err := e.parseEntry(f, b, &ent, &vals); err != nil {
		return err
	}
	if f.mval.msg != nil {
		for _, v := range vals {
			if err := e.validate(f.mval.msg, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachPacked calls fn with each value of packed data b.
func eachPacked(f *field, b []byte, fn func(uint64)) error {
	for len(b) > 0 {
		var u uint64
		var n int
		switch f.wt {
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			u = uint64(v)
		default:
			u, n = protowire.ConsumeFixed64(b)
		}
		if n < 0 {
			return errDecode
		}
		fn(u)
		b = b[n:]
	}
	return nil
}

func (e *encoder) list(f *field, fo []occ, inGoogle bool) error {
	e.out = append(e.out, '[')
	comma := false
	for _, o := range fo {
		if f.packable && o.wt == protowire.BytesType {
			// Check the whole run first: a bad value fails the message, as proto.Unmarshal.
			if err := eachPacked(f, o.b, func(uint64) {}); err != nil {
				return err
			}
			eachPacked(f, o.b, func(u uint64) {
				if comma {
					e.out = append(e.out, ',')
				}
				comma = true
				e.scalar(f, u, nil, inGoogle)
			})
			continue
		}
		if comma {
			e.out = append(e.out, ',')
		}
		comma = true
		if f.msg != nil {
			if err := e.message(f.msg, o.b, ""); err != nil {
				return err
			}
			continue
		}
		if err := e.scalarErr(f, o.u, o.b, inGoogle); err != nil {
			return err
		}
	}
	e.out = append(e.out, ']')
	return nil
}

// parseEntry reads a map entry as proto.Unmarshal does: the last key and value win, a
// message value is the merge of its occurrences (in vals).
func (e *encoder) parseEntry(f *field, b []byte, ent *entry, vals *[][]byte) error {
	kf, vf := f.mkey, f.mval
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errDecode
		}
		b = b[n:]
		var sub *field
		switch num {
		case 1:
			sub = kf
		case 2:
			sub = vf
		}
		if sub == nil || wt != sub.wt {
			if n = protowire.ConsumeFieldValue(num, wt, b); n < 0 {
				return errDecode
			}
			b = b[n:]
			continue
		}
		var u uint64
		var p []byte
		switch wt {
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			u = uint64(v)
		case protowire.Fixed64Type:
			u, n = protowire.ConsumeFixed64(b)
		default:
			p, n = protowire.ConsumeBytes(b)
			if n >= 0 && sub.kind == protoreflect.StringKind && !utf8.Valid(p) {
				return invalidUTF8(f)
			}
		}
		if n < 0 {
			return errDecode
		}
		b = b[n:]
		if num == 1 {
			ent.k, ent.ks = u, p
		} else if vf.msg != nil {
			*vals = append(*vals, p)
		} else {
			ent.v, ent.vb = u, p
		}
	}
	return nil
}

func (e *encoder) mapValue(f *field, fo []occ, inGoogle bool) error {
	// proto.Unmarshal counts a map entry as a level of nesting.
	if e.depth++; len(fo) > 0 && e.depth > maxDepth {
		return errors.New("exceeded maximum recursion depth")
	}
	defer func() { e.depth-- }()
	base := len(e.ents)
	defer func() { e.ents = e.ents[:base] }()
	var vals [][]byte
	for i, o := range fo {
		var ent entry
		vals = vals[:0]
		if err := e.parseEntry(f, o.b, &ent, &vals); err != nil {
			return err
		}
		ent.seq = i
		if f.mval.msg != nil {
			switch len(vals) {
			case 0:
			case 1:
				ent.vb = vals[0]
			default:
				var all []byte
				for _, v := range vals {
					all = append(all, v...)
				}
				ent.vb = all
			}
		}
		e.ents = append(e.ents, ent)
	}
	e.entsMax = max(e.entsMax, len(e.ents))
	ents := e.ents[base:]
	kk := f.mkey.kind
	signed := kk == protoreflect.Int32Kind || kk == protoreflect.Sint32Kind || kk == protoreflect.Sfixed32Kind ||
		kk == protoreflect.Int64Kind || kk == protoreflect.Sint64Kind || kk == protoreflect.Sfixed64Kind
	for i := range ents {
		if kk != protoreflect.StringKind {
			ents[i].k = keyBits(f.mkey, ents[i].k)
		}
	}
	slices.SortStableFunc(ents, func(a, b entry) int {
		switch {
		case kk == protoreflect.StringKind:
			return compareBytes(a.ks, b.ks)
		case signed:
			x, y := int64(a.k), int64(b.k)
			if x < y {
				return -1
			} else if x > y {
				return 1
			}
			return 0
		}
		if a.k < b.k {
			return -1
		} else if a.k > b.k {
			return 1
		}
		return 0
	})
	e.out = append(e.out, '{')
	comma := false
	for i := range ents {
		ent := &ents[i]
		if i+1 < len(ents) && sameKey(kk, ent, &ents[i+1]) {
			// Replaced by a later entry; proto.Unmarshal still parsed its value.
			if f.mval.msg != nil {
				if err := e.validate(f.mval.msg, ent.vb); err != nil {
					return err
				}
			}
			continue
		}
		if comma {
			e.out = append(e.out, ',')
		}
		comma = true
		switch {
		case kk == protoreflect.StringKind:
			e.out = appendString(e.out, unsafeString(ent.ks))
		case kk == protoreflect.BoolKind:
			if ent.k != 0 {
				e.out = append(e.out, `"true"`...)
			} else {
				e.out = append(e.out, `"false"`...)
			}
		case signed:
			e.out = append(e.out, '"')
			e.out = strconv.AppendInt(e.out, int64(ent.k), 10)
			e.out = append(e.out, '"')
		default:
			e.out = append(e.out, '"')
			e.out = strconv.AppendUint(e.out, ent.k, 10)
			e.out = append(e.out, '"')
		}
		e.out = append(e.out, ':')
		if f.mval.msg != nil {
			if err := e.message(f.mval.msg, ent.vb, ""); err != nil {
				return err
			}
			continue
		}
		if err := e.scalarErr(f.mval, ent.v, ent.vb, inGoogle); err != nil {
			return err
		}
	}
	e.out = append(e.out, '}')
	return nil
}

func compareBytes(a, b []byte) int {
	return stringsCompare(unsafeString(a), unsafeString(b))
}

func stringsCompare(a, b string) int {
	if a < b {
		return -1
	} else if a > b {
		return 1
	}
	return 0
}

func sameKey(kk protoreflect.Kind, a, b *entry) bool {
	if kk == protoreflect.StringKind {
		return string(a.ks) == string(b.ks)
	}
	return a.k == b.k
}

// keyBits is a map key's wire value as the key's Go value: signed ones sign-extended,
// booleans 0 or 1.
func keyBits(f *field, u uint64) uint64 {
	switch f.kind {
	case protoreflect.BoolKind:
		if u != 0 {
			return 1
		}
		return 0
	case protoreflect.Int32Kind:
		return uint64(int64(int32(u)))
	case protoreflect.Sint32Kind:
		return uint64(int64(int32(protowire.DecodeZigZag(u & math.MaxUint32))))
	case protoreflect.Sfixed32Kind:
		return uint64(int64(int32(uint32(u))))
	case protoreflect.Sint64Kind:
		return uint64(protowire.DecodeZigZag(u))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return uint64(uint32(u))
	}
	return u
}

// scalarErr is scalar, failing on a string that is not UTF-8.
func (e *encoder) scalarErr(f *field, u uint64, b []byte, inGoogle bool) error {
	if f.kind == protoreflect.StringKind && !utf8.Valid(b) {
		return invalidUTF8(f)
	}
	e.scalar(f, u, b, inGoogle)
	return nil
}

// scalar writes a scalar value from its wire form (u or b); strings are valid UTF-8.
func (e *encoder) scalar(f *field, u uint64, b []byte, inGoogle bool) {
	switch f.kind {
	case protoreflect.BoolKind:
		if u != 0 {
			e.out = append(e.out, "true"...)
		} else {
			e.out = append(e.out, "false"...)
		}
	case protoreflect.Int32Kind:
		e.out = strconv.AppendInt(e.out, int64(int32(u)), 10)
	case protoreflect.Sint32Kind:
		e.out = strconv.AppendInt(e.out, int64(int32(protowire.DecodeZigZag(u&math.MaxUint32))), 10)
	case protoreflect.Sfixed32Kind:
		e.out = strconv.AppendInt(e.out, int64(int32(uint32(u))), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		e.out = strconv.AppendUint(e.out, uint64(uint32(u)), 10)
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind, protoreflect.Sint64Kind:
		n := int64(u)
		if f.kind == protoreflect.Sint64Kind {
			n = protowire.DecodeZigZag(u)
		}
		if e.num && !inGoogle && n >= -maxSafeInt && n <= maxSafeInt {
			e.out = strconv.AppendInt(e.out, n, 10)
			return
		}
		e.out = append(e.out, '"')
		e.out = strconv.AppendInt(e.out, n, 10)
		e.out = append(e.out, '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if e.num && !inGoogle && u <= maxSafeInt {
			e.out = strconv.AppendUint(e.out, u, 10)
			return
		}
		e.out = append(e.out, '"')
		e.out = strconv.AppendUint(e.out, u, 10)
		e.out = append(e.out, '"')
	case protoreflect.FloatKind:
		e.out = appendFloat(e.out, float64(math.Float32frombits(uint32(u))), 32)
	case protoreflect.DoubleKind:
		e.out = appendFloat(e.out, math.Float64frombits(u), 64)
	case protoreflect.StringKind:
		e.out = appendString(e.out, unsafeString(b))
	case protoreflect.BytesKind:
		e.out = append(e.out, '"')
		e.out = base64.StdEncoding.AppendEncode(e.out, b)
		e.out = append(e.out, '"')
	case protoreflect.EnumKind:
		if f.enum.null {
			e.out = append(e.out, "null"...)
			return
		}
		n := int32(u)
		if name, ok := f.enum.byNum[n]; ok {
			e.out = append(e.out, '"')
			e.out = append(e.out, name...)
			e.out = append(e.out, '"')
			return
		}
		e.out = strconv.AppendInt(e.out, int64(n), 10)
	}
}

// zero writes the value of an unset scalar field.
func (e *encoder) zero(f *field, inGoogle bool) {
	e.scalar(f, 0, nil, inGoogle)
}

// wellKnown writes a well-known type other than Any in its own JSON form.
func (e *encoder) wellKnown(m *message, occs []occ, last, run []int32) error {
	lastOf := func(i int) (occ, bool) {
		var o occ
		found := false
		for _, x := range occs {
			if int(x.fi) == i {
				o, found = x, true
			}
		}
		return o, found
	}
	fieldOccs := func(i int) []occ {
		j := 0
		for j < len(occs) && int(occs[j].fi) < i {
			j++
		}
		k := j
		for k < len(occs) && int(occs[k].fi) == i {
			k++
		}
		return occs[j:k]
	}
	switch m.wkt {
	case wktWrapper:
		f := &m.fields[0]
		o, _ := lastOf(0)
		if m.int64Wrap {
			inGoogle := false // Int64Value and UInt64Value follow Int64AsNumber
			e.scalar(f, o.u, o.b, inGoogle)
			return nil
		}
		e.scalar(f, o.u, o.b, true)
		return nil
	case wktEmpty:
		e.out = append(e.out, "{}"...)
		return nil
	case wktTimestamp, wktDuration:
		s, _ := lastOf(0)
		n, _ := lastOf(1)
		secs, nanos := int64(s.u), int64(int32(n.u))
		if m.wkt == wktTimestamp {
			if secs < minTimestampSeconds || secs > maxTimestampSeconds {
				return errors.New("google.protobuf.Timestamp: seconds out of range")
			}
			if nanos < 0 || nanos > secondsInNanos {
				return errors.New("google.protobuf.Timestamp: nanos out of range")
			}
			e.out = append(e.out, '"')
			p := len(e.out)
			e.out = time.Unix(secs, nanos).UTC().AppendFormat(e.out, "2006-01-02T15:04:05.000000000")
			e.out = trimZeros(e.out, p)
			e.out = append(e.out, 'Z', '"')
			return nil
		}
		if secs < -maxSecondsInDuration || secs > maxSecondsInDuration {
			return errors.New("google.protobuf.Duration: seconds out of range")
		}
		if nanos < -secondsInNanos || nanos > secondsInNanos {
			return errors.New("google.protobuf.Duration: nanos out of range")
		}
		if (secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
			return errors.New("google.protobuf.Duration: signs of seconds and nanos do not match")
		}
		e.out = append(e.out, '"')
		p := len(e.out)
		if secs < 0 || nanos < 0 {
			e.out = append(e.out, '-')
			secs, nanos = -secs, -nanos
		}
		e.out = strconv.AppendInt(e.out, secs, 10)
		e.out = append(e.out, '.')
		var buf [9]byte
		for i := 8; i >= 0; i-- {
			buf[i] = byte('0' + nanos%10)
			nanos /= 10
		}
		e.out = append(e.out, buf[:]...)
		e.out = trimZeros(e.out, p)
		e.out = append(e.out, 's', '"')
		return nil
	case wktFieldMask:
		e.out = append(e.out, '"')
		for i, o := range fieldOccs(0) {
			if i > 0 {
				e.out = append(e.out, ',')
			}
			s := unsafeString(o.b)
			if !protoreflect.FullName(s).IsValid() {
				return errors.New("google.protobuf.FieldMask.paths contains invalid path: " + strconv.Quote(s))
			}
			p := len(e.out)
			up := false
			for j := 0; j < len(s); j++ {
				c := s[j]
				if c != '_' {
					if up && 'a' <= c && c <= 'z' {
						c -= 'a' - 'A'
					}
					e.out = append(e.out, c)
				}
				up = c == '_'
			}
			// The camel form must turn back into the path.
			cc, k := e.out[p:], 0
			for j := 0; j < len(cc); j++ {
				c := cc[j]
				if 'A' <= c && c <= 'Z' {
					if k+1 >= len(s) || s[k] != '_' || s[k+1] != c+'a'-'A' {
						return errors.New("google.protobuf.FieldMask.paths contains irreversible value " + strconv.Quote(s))
					}
					k += 2
					continue
				}
				if k >= len(s) || s[k] != c {
					return errors.New("google.protobuf.FieldMask.paths contains irreversible value " + strconv.Quote(s))
				}
				k++
			}
			if k != len(s) {
				return errors.New("google.protobuf.FieldMask.paths contains irreversible value " + strconv.Quote(s))
			}
		}
		e.out = append(e.out, '"')
		return nil
	case wktStruct:
		return e.mapValue(&m.fields[0], fieldOccs(0), true)
	case wktListValue:
		return e.list(&m.fields[0], fieldOccs(0), true)
	case wktValue:
		i := last[0]
		if i < 0 {
			return errors.New("google.protobuf.Value: none of the oneof fields is set")
		}
		for j := range m.fields {
			if int32(j) != i {
				if err := e.validateAll(&m.fields[j], fieldOccs(j)); err != nil {
					return err
				}
			}
		}
		f := &m.fields[i]
		fo := fieldOccs(int(i))
		if f.msg != nil {
			return e.merged(f, fo, run[0])
		}
		o := fo[len(fo)-1]
		if f.kind == protoreflect.DoubleKind {
			if v := math.Float64frombits(o.u); math.IsNaN(v) || math.IsInf(v, 0) {
				return errors.New("google.protobuf.Value.number_value: invalid value")
			}
		}
		e.scalar(f, o.u, o.b, true)
		return nil
	}
	return errors.New("wirejson: unknown well-known type")
}

// trimZeros drops "000" twice and ".000" once from the end, as protojson does to the
// fraction of a Timestamp or Duration that starts at p.
func trimZeros(b []byte, p int) []byte {
	s := b[p:]
	for range 2 {
		if len(s) >= 3 && string(s[len(s)-3:]) == "000" {
			s = s[:len(s)-3]
		}
	}
	if len(s) >= 4 && string(s[len(s)-4:]) == ".000" {
		s = s[:len(s)-4]
	}
	return b[:p+len(s)]
}

// anyMessage writes an Any: the message its type URL names, with "@type" first.
func (e *encoder) anyMessage(m *message, occs []occ) error {
	var url, value []byte
	for _, o := range occs {
		if o.fi == 0 {
			url = o.b
		} else {
			value = o.b
		}
	}
	if len(url) == 0 {
		if len(value) == 0 {
			e.out = append(e.out, "{}"...)
			return nil
		}
		return errors.New("google.protobuf.Any: type_url is not set")
	}
	typeURL := string(url)
	mt, err := e.res.FindMessageByURL(typeURL)
	if err != nil {
		return errors.New("google.protobuf.Any: unable to resolve " + strconv.Quote(typeURL) + ": " + err.Error())
	}
	em := planFor(mt.Descriptor())
	if em.whyNot != "" {
		return &Error{Msg: em.whyNot}
	}
	// Inside an Any, protojson's form exactly; protojson reads the value with proto.Unmarshal,
	// whose recursion limit starts again.
	num, depth := e.num, e.depth
	e.num, e.depth = false, 0
	defer func() { e.num, e.depth = num, depth }()
	// Empty has no JSON form of its own here: protojson writes {"@type":...}.
	if em.wkt != wktNone && em.wkt != wktEmpty {
		if err := e.validate(em, value); err != nil {
			return err
		}
		e.out = append(e.out, `{"@type":`...)
		e.out = appendString(e.out, typeURL)
		e.out = append(e.out, `,"value":`...)
		if err := e.message(em, value, ""); err != nil {
			return err
		}
		e.out = append(e.out, '}')
		return nil
	}
	return e.message(em, value, typeURL)
}

// appendString writes s as a JSON string, escaping as protojson does; s is valid UTF-8.
func appendString(out []byte, s string) []byte {
	out = append(out, '"')
	i := 0
	for j := 0; j < len(s); j++ {
		c := s[j]
		if c >= ' ' && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[i:j]...)
		out = append(out, '\\')
		switch c {
		case '"', '\\':
			out = append(out, c)
		case '\b':
			out = append(out, 'b')
		case '\f':
			out = append(out, 'f')
		case '\n':
			out = append(out, 'n')
		case '\r':
			out = append(out, 'r')
		case '\t':
			out = append(out, 't')
		default:
			out = append(out, 'u')
			out = append(out, "0000"[1+(bits.Len32(uint32(c))-1)/4:]...)
			out = strconv.AppendUint(out, uint64(c), 16)
		}
		i = j + 1
	}
	out = append(out, s[i:]...)
	return append(out, '"')
}

// appendFloat writes a float as protojson does.
func appendFloat(out []byte, n float64, bitSize int) []byte {
	switch {
	case math.IsNaN(n):
		return append(out, `"NaN"`...)
	case math.IsInf(n, +1):
		return append(out, `"Infinity"`...)
	case math.IsInf(n, -1):
		return append(out, `"-Infinity"`...)
	}
	fmt := byte('f')
	if abs := math.Abs(n); abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			fmt = 'e'
		}
	}
	out = strconv.AppendFloat(out, n, fmt, -1, bitSize)
	if fmt == 'e' {
		n := len(out)
		if n >= 4 && out[n-4] == 'e' && out[n-3] == '-' && out[n-2] == '0' {
			out[n-2] = out[n-1]
			out = out[:n-1]
		}
	}
	return out
}
