package wirejson

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// The lexer follows protojson's own JSON decoder (google.golang.org/protobuf/internal/encoding/json)
// rule for rule, so the two accept the same texts: JSON, plus its number and literal rules
// (a literal or number must be followed by a delimiter; "1e" before a delimiter is a number).

type tokKind uint8

const (
	tkEOF tokKind = iota
	tkNull
	tkTrue
	tkFalse
	tkNumber
	tkString
	tkObject // '{', consumed
	tkArray  // '[', consumed
	tkOther  // a closing bracket, comma or colon: not a value
)

// tok is one value token; str is a string's content (valid until the next string read).
type tok struct {
	kind tokKind
	raw  []byte
	str  []byte
	pos  int
}

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func (d *decoder) ws() {
	for d.pos < len(d.in) && isWS(d.in[d.pos]) {
		d.pos++
	}
}

// peek returns the next non-space byte, 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.pos < len(d.in) {
		return d.in[d.pos]
	}
	return 0
}

// value reads the next value token; for objects and arrays it consumes only the bracket.
func (d *decoder) value() (tok, error) {
	d.ws()
	t := tok{pos: d.pos}
	if d.pos >= len(d.in) {
		return t, d.syntax("unexpected end of input")
	}
	in := d.in[d.pos:]
	switch in[0] {
	case 'n':
		if n := matchWithDelim("null", in); n != 0 {
			t.kind, t.raw = tkNull, in[:n]
			d.pos += n
			return t, nil
		}
	case 't':
		if n := matchWithDelim("true", in); n != 0 {
			t.kind, t.raw = tkTrue, in[:n]
			d.pos += n
			return t, nil
		}
	case 'f':
		if n := matchWithDelim("false", in); n != 0 {
			t.kind, t.raw = tkFalse, in[:n]
			d.pos += n
			return t, nil
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if n, ok := parseNumber(in); ok {
			t.kind, t.raw = tkNumber, in[:n]
			d.pos += n
			return t, nil
		}
	case '"':
		s, n, err := d.parseString(in)
		if err != nil {
			return t, err
		}
		t.kind, t.raw, t.str = tkString, in[:n], s
		d.pos += n
		return t, nil
	case '{':
		d.pos++
		t.kind = tkObject
		return t, nil
	case '[':
		d.pos++
		t.kind = tkArray
		return t, nil
	case '}', ']', ',', ':':
		t.kind, t.raw = tkOther, in[:1]
		return t, d.syntax("unexpected " + strconv.Quote(string(in[:1])))
	}
	return t, d.syntax("invalid value")
}

// member reads the next member name of an object whose '{' is consumed, and its ':'.
// first says no member was read yet. done reports the closing '}'.
func (d *decoder) member(first *bool) (name []byte, pos int, done bool, err error) {
	c := d.peek()
	if c == '}' {
		d.pos++
		return nil, 0, true, nil
	}
	if !*first {
		if c != ',' {
			return nil, 0, false, d.syntax(`expected "," or "}"`)
		}
		d.pos++
		c = d.peek()
	}
	*first = false
	if c != '"' {
		return nil, 0, false, d.syntax("expected a member name")
	}
	pos = d.pos
	s, n, err := d.parseString(d.in[d.pos:])
	if err != nil {
		return nil, 0, false, err
	}
	d.pos += n
	if d.peek() != ':' {
		return nil, 0, false, d.syntax(`expected ":" after member name`)
	}
	d.pos++
	return s, pos, false, nil
}

// element prepares the next element of an array whose '[' is consumed; done reports ']'.
func (d *decoder) element(first *bool) (done bool, err error) {
	c := d.peek()
	if *first {
		*first = false
		if c == ']' {
			d.pos++
			return true, nil
		}
		return false, nil
	}
	switch c {
	case ']':
		d.pos++
		return true, nil
	case ',':
		d.pos++
		if d.peek() == ']' {
			return false, d.syntax(`unexpected "]"`)
		}
		return false, nil
	}
	return false, d.syntax(`expected "," or "]"`)
}

// skip reads one whole value, checking its syntax. open counts the objects and arrays it
// is in; like protojson, it refuses more than the recursion limit leaves.
func (d *decoder) skip(open int) error {
	t, err := d.value()
	if err != nil {
		return err
	}
	if t.kind != tkObject && t.kind != tkArray {
		return nil
	}
	if open++; open > maxDepth-d.depth {
		return d.syntax("exceeded max recursion depth")
	}
	first := true
	for {
		var done bool
		if t.kind == tkObject {
			_, _, done, err = d.member(&first)
		} else {
			done, err = d.element(&first)
		}
		if err != nil || done {
			return err
		}
		if err := d.skip(open); err != nil {
			return err
		}
	}
}

func matchWithDelim(s string, b []byte) int {
	if len(b) < len(s) || string(b[:len(s)]) != s {
		return 0
	}
	n := len(s)
	if n < len(b) && isNotDelim(b[n]) {
		return 0
	}
	return n
}

func isNotDelim(c byte) bool {
	return c == '-' || c == '+' || c == '.' || c == '_' ||
		('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// parseNumber returns the length of the number at the start of input, as protojson reads it.
func parseNumber(input []byte) (int, bool) {
	var n int
	s := input
	if len(s) == 0 {
		return 0, false
	}
	if s[0] == '-' {
		s = s[1:]
		n++
		if len(s) == 0 {
			return 0, false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
		n++
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		n++
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
			n++
		}
	default:
		return 0, false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		n += 2
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
			n++
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		n++
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			n++
			if len(s) == 0 {
				return 0, false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
			n++
		}
	}
	if n < len(input) && isNotDelim(input[n]) {
		return 0, false
	}
	return n, true
}

// intString writes the integer a JSON number denotes (1.0, 1e2 and 100e-2 are integers) into
// buf, as protojson normalises it; false if it is not an integer or has over 20 digits.
func intString(buf *[24]byte, raw []byte) ([]byte, bool) {
	s := raw
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg = true
		s = s[1:]
	}
	var intp, frac, exp []byte
	if len(s) == 0 {
		return nil, false
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		i := 1
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		intp, s = s[:i], s[i:]
	default:
		return nil, false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		i := 2
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		frac, s = s[1:i], s[i:]
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		exp = s[1:]
		if len(exp) == 1 && (exp[0] == '+' || exp[0] == '-') {
			return nil, false // a sign and no digits: refused even for zero, as protojson does
		}
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	if len(intp) == 0 && len(frac) == 0 {
		buf[0] = '0'
		return buf[:1], true
	}
	var e int
	if len(exp) > 0 {
		i, err := strconv.ParseInt(unsafeString(exp), 10, 32)
		if err != nil {
			return nil, false
		}
		e = int(i)
	}
	out := buf[:0]
	if neg {
		out = append(out, '-')
	}
	if e >= 0 {
		if len(frac) > e || len(intp)+e > 20 {
			return nil, false
		}
		out = append(out, intp...)
		out = append(out, frac...)
		for i := 0; i < e-len(frac); i++ {
			out = append(out, '0')
		}
		return out, true
	}
	if len(frac) > 0 {
		return nil, false
	}
	index := len(intp) + e
	if index < 0 {
		return nil, false
	}
	for i := index; i < len(intp); i++ {
		if intp[i] != '0' {
			return nil, false
		}
	}
	return append(out, intp[:index]...), true
}

// parseString reads the string at the start of in; the content aliases in when it has no
// escapes, else d.str.
func (d *decoder) parseString(in []byte) ([]byte, int, error) {
	in0 := in
	in = in[1:]
	i := 0
	for i < len(in) && in[i] >= ' ' && in[i] != '"' && in[i] != '\\' && in[i] < utf8.RuneSelf {
		i++
	}
	if i < len(in) && in[i] == '"' {
		return in[:i], i + 2, nil
	}
	out := append(d.str[:0], in[:i]...)
	in = in[i:]
	for len(in) > 0 {
		switch r, n := utf8.DecodeRune(in); {
		case r == utf8.RuneError && n == 1:
			return nil, 0, d.syntaxAt(len(in0)-len(in)+d.pos, "invalid UTF-8 in string")
		case r < ' ':
			return nil, 0, d.syntaxAt(len(in0)-len(in)+d.pos, "invalid character in string")
		case r == '"':
			in = in[1:]
			d.str = out
			return out, len(in0) - len(in), nil
		case r == '\\':
			if len(in) < 2 {
				return nil, 0, d.syntax("unexpected end of input")
			}
			switch c := in[1]; c {
			case '"', '\\', '/':
				in, out = in[2:], append(out, c)
			case 'b':
				in, out = in[2:], append(out, '\b')
			case 'f':
				in, out = in[2:], append(out, '\f')
			case 'n':
				in, out = in[2:], append(out, '\n')
			case 'r':
				in, out = in[2:], append(out, '\r')
			case 't':
				in, out = in[2:], append(out, '\t')
			case 'u':
				if len(in) < 6 {
					return nil, 0, d.syntax("unexpected end of input")
				}
				v, ok := hex4(in[2:6])
				if !ok {
					return nil, 0, d.syntax("invalid escape code in string")
				}
				in = in[6:]
				r := rune(v)
				if utf16.IsSurrogate(r) {
					if len(in) < 6 {
						return nil, 0, d.syntax("unexpected end of input")
					}
					v, ok := hex4(in[2:6])
					r = utf16.DecodeRune(r, rune(v))
					if in[0] != '\\' || in[1] != 'u' || r == unicode.ReplacementChar || !ok {
						return nil, 0, d.syntax("invalid escape code in string")
					}
					in = in[6:]
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, 0, d.syntax("invalid escape code in string")
			}
		default:
			out = append(out, in[:n]...)
			in = in[n:]
		}
	}
	return nil, 0, d.syntax("unexpected end of input")
}

func hex4(b []byte) (uint16, bool) {
	var v uint16
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(c)
	}
	return v, true
}

// unsafeString views b as a string without copying; only for calls that do not keep it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
