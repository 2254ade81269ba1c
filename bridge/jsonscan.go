package bridge

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// The frame envelope is read with a small scanner over bytes that json.Valid has accepted:
// values come back as sub-slices of the frame, so decoding an envelope allocates nothing.

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the JSON string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// eachMember calls fn for each member of the valid JSON object obj, with the key's raw token
// (quotes included) and the value's raw bytes.
func eachMember(obj []byte, fn func(key, value []byte)) {
	i := skipSpace(obj, 0) + 1 // past '{'
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return
		}
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		kEnd := skipString(obj, i)
		key := obj[i:kEnd]
		i = skipSpace(obj, kEnd) + 1 // past ':'
		i = skipSpace(obj, i)
		vEnd := skipValue(obj, i)
		fn(key, obj[i:vEnd])
		i = vEnd
	}
}

// eachElement calls fn for each element of the valid JSON array arr.
func eachElement(arr []byte, fn func(v []byte)) {
	i := skipSpace(arr, 0) + 1
	for {
		i = skipSpace(arr, i)
		if i >= len(arr) || arr[i] == ']' {
			return
		}
		if arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
		end := skipValue(arr, i)
		fn(arr[i:end])
		i = end
	}
}

// keyIs reports whether the raw key token equals the plain name.
func keyIs(key []byte, name string) bool {
	if len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
		return true
	}
	if len(key) > 2 && containsBackslash(key) {
		s, ok := jsonString(key)
		return ok && s == name
	}
	return false
}

func containsBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// jsonString decodes a raw JSON string token. It avoids the decoder when there are no escapes.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if !containsBackslash(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// unquoted returns the text of a raw JSON string token for a map lookup, without
// allocating when the token has no escapes.
func unquoted(raw []byte) []byte {
	if len(raw) >= 2 && raw[0] == '"' && !containsBackslash(raw) {
		return raw[1 : len(raw)-1]
	}
	s, _ := jsonString(raw)
	return []byte(s)
}

// jsonScalarText reads a raw JSON string or number as text, for keys and page numbers.
func jsonScalarText(raw []byte) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		return jsonString(raw)
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw), true
	}
	return "", false
}

// jsonInt reads a raw JSON number or numeric string as an integer. Fractions and
// out-of-range values are refused.
func jsonInt(raw []byte) (int64, bool) {
	s, ok := jsonScalarText(raw)
	if !ok {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	// JSON numbers such as 2.0 or 1e1 are integers too.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping what JSON and HTML-unsafe
// contexts require.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
