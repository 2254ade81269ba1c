// Package wirejson transcodes between JSON and the protobuf wire format without building
// messages: it reads and writes the bytes directly, driven by a message descriptor. Its JSON
// is protojson's: Unmarshal accepts what protojson.Unmarshal accepts (default options) and
// refuses what it refuses, and Marshal writes exactly what protojson.Marshal writes with
// UseProtoNames and EmitUnpopulated, in compact form (no spaces).
//
// Per message descriptor it computes a plan once (field lookups by name and number, the
// output key of each field) and caches it, so a call does no descriptor work.
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
	groups    bool                       // has a group field: not supported
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
	for d, m := range building {
		plans.Store(d, m)
	}
	return p
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
		if fd.Kind() == protoreflect.GroupKind {
			m.groups = true
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
