package polls

import (
	"cmp"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Messages as Django REST framework words them, since the bridge mimics it.
const (
	msgRequired = "This field is required."
	maxText     = 200
)

// violations collects the field errors of one request.
type violations []*errdetails.BadRequest_FieldViolation

func (v *violations) add(field, desc string) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{Field: field, Description: desc})
}

// text checks a required text field of at most maxText characters.
func (v *violations) text(field, s string) {
	switch {
	case s == "":
		v.add(field, msgRequired)
	case utf8.RuneCountInString(s) > maxText:
		v.add(field, fmt.Sprintf("Ensure this field has no more than %d characters.", maxText))
	}
}

// err is nil without violations, else INVALID_ARGUMENT with msg and a
// BadRequest detail.
func (v violations) err(msg string) error {
	if len(v) == 0 {
		return nil
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{FieldViolations: v})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// maskFields returns the writable fields an update mask names, in the order
// of writable. The read-only id is ignored, as Django REST framework ignores
// read-only fields; any other unknown path is an error.
func maskFields(m *fieldmaskpb.FieldMask, writable []string) ([]string, error) {
	var v violations
	for _, p := range m.GetPaths() {
		if p != "id" && !slices.Contains(writable, p) {
			v.add("update_mask", fmt.Sprintf("Unknown field %q.", p))
		}
	}
	if err := v.err("invalid update_mask"); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(slices.Clone(writable), func(f string) bool {
		return !slices.Contains(m.GetPaths(), f)
	}), nil
}

// apply copies the named fields of src into dst, a message of the same type.
func apply(dst, src proto.Message, fields []string) {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	for _, f := range fields {
		fd := d.Descriptor().Fields().ByName(protoreflect.Name(f))
		d.Set(fd, s.Get(fd))
	}
}

// paging validates a page request and returns its LIMIT and OFFSET; zero
// values mean the defaults, page 1 of 25.
func paging(page, size int32) (limit, offset int64, err error) {
	var v violations
	if page < 0 {
		v.add("page", "Ensure this value is greater than or equal to 1.")
	}
	if size < 0 {
		v.add("page_size", "Ensure this value is greater than or equal to 1.")
	}
	if err := v.err("invalid page"); err != nil {
		return 0, 0, err
	}
	page, size = max(page, 1), cmp.Or(size, 25)
	return int64(size), int64(page-1) * int64(size), nil
}
