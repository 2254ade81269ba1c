// Package wirejson transcodes between JSON and the protobuf wire format without building
// messages: it reads and writes the bytes directly, driven by a message descriptor. Its JSON
// is protojson's: Unmarshal accepts what protojson.Unmarshal accepts (default options) and
// refuses what it refuses, and Marshal writes exactly what protojson.Marshal writes with
// UseProtoNames and EmitUnpopulated, in compact form (no spaces).
//
// Per message descriptor it computes a plan once (field lookups by name and number, the
// output key of each field) and caches it, so a call does no descriptor work. Plans are
// kept for the life of the process, one per descriptor value: a program that builds new
// descriptors for the same types (on every reload of a descriptor set) keeps the old plans.
//
// An Any is the exception to "no messages": its value is read into the resolver's message
// type and marshalled again deterministically, which is how protojson makes its bytes.
//
// Messages using proto2's required fields, closed enums, groups or extensions are refused
// (see Supported); everything proto3 and editions with open enums can express is handled.
package wirejson

import (
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

type wkt uint8

const (
	wktNone wkt = iota
	wktAny
	wktTimestamp
	wktDuration
	wktFieldMask
	wktStruct
	wktValue
	wktListValue
	wktEmpty
	wktWrapper
)

var wktByName = map[protoreflect.FullName]wkt{
	"google.protobuf.Any":         wktAny,
	"google.protobuf.Timestamp":   wktTimestamp,
	"google.protobuf.Duration":    wktDuration,
	"google.protobuf.FieldMask":   wktFieldMask,
	"google.protobuf.Struct":      wktStruct,
	"google.protobuf.Value":       wktValue,
	"google.protobuf.ListValue":   wktListValue,
	"google.protobuf.Empty":       wktEmpty,
	"google.protobuf.BoolValue":   wktWrapper,
	"google.protobuf.Int32Value":  wktWrapper,
	"google.protobuf.Int64Value":  wktWrapper,
	"google.protobuf.UInt32Value": wktWrapper,
	"google.protobuf.UInt64Value": wktWrapper,
	"google.protobuf.FloatValue":  wktWrapper,
	"google.protobuf.DoubleValue": wktWrapper,
	"google.protobuf.StringValue": wktWrapper,
	"google.protobuf.BytesValue":  wktWrapper,
}

// message is the plan of one message type.
type message struct {
	md        protoreflect.MessageDescriptor
	wkt       wkt
	int64Wrap bool // Int64Value or UInt64Value: written as a number under Int64AsNumber
	inGoogle  bool // a google.protobuf message: Int64AsNumber leaves its fields alone
	fields    []field
	byName    map[string]int32           // JSON and proto names → index in fields
	byNum     []int32                    // small numbers → index+1
	byNumMap  map[protowire.Number]int32 // the others → index
	oneofs    int                        // oneofs, synthetic ones included
	own       string                     // why this message itself is not supported, if it is not
	whyNot    string                     // why it or a message it uses is not supported
}

// field is the plan of one field (or of a map entry's key or value).
type field struct {
	fd        protoreflect.FieldDescriptor
	num       protowire.Number
	kind      protoreflect.Kind
	wt        protowire.Type // the kind's wire type
	name      string         // proto name, for errors
	key       []byte         // `"proto_name":` for output
	list      bool
	isMap     bool
	packed    bool // written packed (proto3 default for numeric kinds)
	packable  bool // may arrive packed
	presence  bool // explicit presence: a zero value is still written
	oneof     int  // index of the containing oneof, -1 for none
	synthetic bool // the oneof is a proto3 optional's
	msg       *message
	enum      *enum
	isValue   bool // message google.protobuf.Value: JSON null is its null_value
	mkey      *field
	mval      *field
}

type enum struct {
	null   bool // google.protobuf.NullValue: written as null
	byName map[string]int32
	byNum  map[int32]string
	zero   string // name of value 0, "" if none
}

var (
	plans   sync.Map // protoreflect.MessageDescriptor → *message
	planMu  sync.Mutex
	enumMap = map[protoreflect.EnumDescriptor]*enum{} // guarded by planMu
)

// planFor returns md's plan, building it (and those of the messages it uses) on first use.
func planFor(md protoreflect.MessageDescriptor) *message {
	if p, ok := plans.Load(md); ok {
		return p.(*message)
	}
	planMu.Lock()
	defer planMu.Unlock()
	if p, ok := plans.Load(md); ok {
		return p.(*message)
	}
	building := map[protoreflect.MessageDescriptor]*message{}
	p := build(md, building)
	for _, m := range building {
		m.whyNot = whyNot(m, map[*message]bool{})
	}
	for d, m := range building {
		plans.Store(d, m)
	}
	return p
}

// unsupported names the proto2 feature a field uses that wirejson does not handle ("" if
// none): protojson's treatment of those differs from proto3's and is not reproduced.
func unsupported(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.Kind() == protoreflect.GroupKind:
		return "group (delimited) fields"
	case fd.Cardinality() == protoreflect.Required:
		return "required fields"
	case fd.Enum() != nil && fd.Enum().IsClosed():
		return "closed enums"
	case fd.IsMap():
		if s := unsupported(fd.MapValue()); s != "" {
			return s
		}
	}
	return ""
}

// whyNot is why m or a message it reaches is not supported, "" if all are.
func whyNot(m *message, seen map[*message]bool) string {
	if m.own != "" {
		return m.own
	}
	seen[m] = true
	for i := range m.fields {
		f := &m.fields[i]
		sub := f.msg
		if f.isMap {
			sub = f.mval.msg
		}
		if sub != nil && !seen[sub] {
			if s := whyNot(sub, seen); s != "" {
				return s
			}
		}
	}
	return ""
}

// Supported reports whether wirejson handles messages of type md, and if not, why: it
// handles proto3 and editions messages with open enums, and not proto2's required fields,
// closed enums, groups and extensions. Unmarshal and Marshal refuse the others with this
// error, so a caller can check once and keep protojson for them.
func Supported(md protoreflect.MessageDescriptor) error {
	if p := planFor(md); p.whyNot != "" {
		return &Error{Msg: p.whyNot}
	}
	return nil
}

func build(md protoreflect.MessageDescriptor, building map[protoreflect.MessageDescriptor]*message) *message {
	if p, ok := plans.Load(md); ok {
		return p.(*message)
	}
	if p, ok := building[md]; ok {
		return p
	}
	m := &message{md: md, wkt: wktByName[md.FullName()], byName: map[string]int32{}}
	m.int64Wrap = md.FullName() == "google.protobuf.Int64Value" || md.FullName() == "google.protobuf.UInt64Value"
	m.inGoogle = md.FullName().Parent() == "google.protobuf"
	building[md] = m
	fds := md.Fields()
	m.fields = make([]field, fds.Len())
	m.oneofs = md.Oneofs().Len()
	var maxNum protowire.Number
	for i := range m.fields {
		fd := fds.Get(i)
		m.fields[i] = buildField(fd, building)
		if m.own == "" {
			m.own = unsupported(fd)
		}
		maxNum = max(maxNum, fd.Number())
	}
	// Proto names first: a JSON name wins, as protojson looks it up first.
	for i := range m.fields {
		m.byName[string(fds.Get(i).TextName())] = int32(i)
	}
	for i := range m.fields {
		m.byName[fds.Get(i).JSONName()] = int32(i)
	}
	if m.own == "" && md.ExtensionRanges().Len() > 0 {
		m.own = "extensions"
	}
	if m.own != "" {
		m.own = string(md.FullName()) + " uses " + m.own + ", which wirejson does not handle"
	}
	if maxNum < 1024 {
		m.byNum = make([]int32, maxNum+1)
		for i := range m.fields {
			m.byNum[m.fields[i].num] = int32(i + 1)
		}
	} else {
		m.byNumMap = map[protowire.Number]int32{}
		for i := range m.fields {
			m.byNumMap[m.fields[i].num] = int32(i)
		}
	}
	return m
}

func buildField(fd protoreflect.FieldDescriptor, building map[protoreflect.MessageDescriptor]*message) field {
	f := field{
		fd:       fd,
		num:      fd.Number(),
		kind:     fd.Kind(),
		wt:       wireType(fd.Kind()),
		name:     string(fd.Name()),
		list:     fd.IsList(),
		isMap:    fd.IsMap(),
		presence: fd.HasPresence() && !fd.IsList() && !fd.IsMap(),
		oneof:    -1,
	}
	f.key = appendString(nil, string(fd.TextName()))
	f.key = append(f.key, ':')
	if od := fd.ContainingOneof(); od != nil {
		f.oneof = od.Index()
		f.synthetic = od.IsSynthetic()
	}
	f.packable = f.list && f.wt != protowire.BytesType && f.wt != protowire.StartGroupType
	f.packed = f.packable && fd.IsPacked()
	if f.isMap {
		k, v := buildField(fd.MapKey(), building), buildField(fd.MapValue(), building)
		f.mkey, f.mval = &k, &v
		return f
	}
	switch f.kind {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		f.msg = build(fd.Message(), building)
		f.isValue = fd.Message().FullName() == "google.protobuf.Value"
	case protoreflect.EnumKind:
		f.enum = enumFor(fd.Enum())
	}
	return f
}

func enumFor(ed protoreflect.EnumDescriptor) *enum {
	if e, ok := enumMap[ed]; ok {
		return e
	}
	e := &enum{null: ed.FullName() == "google.protobuf.NullValue", byName: map[string]int32{}, byNum: map[int32]string{}}
	vals := ed.Values()
	for i := 0; i < vals.Len(); i++ {
		v := vals.Get(i)
		e.byName[string(v.Name())] = int32(v.Number())
		if _, dup := e.byNum[int32(v.Number())]; !dup { // the first of aliases, as ByNumber
			e.byNum[int32(v.Number())] = string(v.Name())
		}
	}
	if v := vals.ByNumber(0); v != nil {
		e.zero = string(v.Name())
	}
	enumMap[ed] = e
	return e
}

func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.BytesType
}

// byNumber returns the index of the field numbered n, -1 if none.
func (m *message) byNumber(n protowire.Number) int {
	if m.byNum != nil {
		if int(n) < len(m.byNum) {
			return int(m.byNum[n]) - 1
		}
		return -1
	}
	if i, ok := m.byNumMap[n]; ok {
		return int(i)
	}
	return -1
}
