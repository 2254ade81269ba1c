package bridge

import (
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxSafeInt is the largest integer a JSON number carries exactly in JavaScript (2^53−1).
const maxSafeInt = 1<<53 - 1

// appendInt64Numbers copies src, protojson of a message of md, with its safe 64-bit
// integers unquoted. The descriptor says which strings are integers: a string field holding
// "12" is left alone.
func appendInt64Numbers(dst, src []byte, md protoreflect.MessageDescriptor) []byte {
	if isInt64Wrapper(md) {
		return appendSafeInt(dst, src, md.Fields().ByName("value").Kind())
	}
	if md.FullName().Parent() == "google.protobuf" || len(src) == 0 || src[0] != '{' {
		return append(dst, src...) // other well-known types have their own JSON forms
	}
	dst = append(dst, '{')
	first := true
	fields := md.Fields()
	eachMember(src, func(k, v []byte) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(append(dst, k...), ':')
		f := fieldByKey(fields, k)
		switch {
		case f == nil:
			dst = append(dst, v...)
		case f.IsMap() && v[0] == '{':
			dst = append(dst, '{')
			firstEntry := true
			eachMember(v, func(mk, mv []byte) {
				if !firstEntry {
					dst = append(dst, ',')
				}
				firstEntry = false
				dst = append(append(dst, mk...), ':') // map keys stay strings, as JSON requires
				dst = appendInt64Value(dst, f.MapValue(), mv)
			})
			dst = append(dst, '}')
		case f.IsList() && v[0] == '[':
			dst = append(dst, '[')
			firstElem := true
			eachElement(v, func(e []byte) {
				if !firstElem {
					dst = append(dst, ',')
				}
				firstElem = false
				dst = appendInt64Value(dst, f, e)
			})
			dst = append(dst, ']')
		default:
			dst = appendInt64Value(dst, f, v)
		}
	})
	return append(dst, '}')
}

func appendInt64Value(dst []byte, f protoreflect.FieldDescriptor, v []byte) []byte {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendInt64Numbers(dst, v, f.Message())
	}
	return appendSafeInt(dst, v, f.Kind())
}

// appendSafeInt appends v, a value of a field of kind k, unquoted when it is a 64-bit
// integer within ±maxSafeInt.
func appendSafeInt(dst, v []byte, k protoreflect.Kind) []byte {
	if len(v) < 3 || v[0] != '"' {
		return append(dst, v...)
	}
	s := v[1 : len(v)-1]
	switch k {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if n, err := strconv.ParseInt(string(s), 10, 64); err == nil && n >= -maxSafeInt && n <= maxSafeInt {
			return strconv.AppendInt(dst, n, 10)
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if n, err := strconv.ParseUint(string(s), 10, 64); err == nil && n <= maxSafeInt {
			return strconv.AppendUint(dst, n, 10)
		}
	}
	return append(dst, v...)
}

func isInt64Wrapper(md protoreflect.MessageDescriptor) bool {
	n := md.FullName()
	return n == "google.protobuf.Int64Value" || n == "google.protobuf.UInt64Value"
}
