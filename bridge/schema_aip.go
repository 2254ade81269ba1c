package bridge

import "google.golang.org/protobuf/reflect/protoreflect"

// aipDataShape is payload.data of an action built by buildAIPRequest: the resource field's
// fields (book's), then the request's other fields (parent, book_id, validate_only), but the
// key and update_mask; a cursor list's page_size and page_token stand first.
func (b *schemaBuilder) aipDataShape(a *action) schemaType {
	obj := schemaType{Type: "object", Fields: []schemaField{}}
	skip := map[protoreflect.FieldDescriptor]bool{a.mask: true, a.data: true}
	if len(a.keyPath) == 1 {
		skip[a.pk] = true
	}
	if a.kind == kindList {
		if a.pageToken != nil {
			obj.Fields = append(obj.Fields, pageField("page_size"),
				schemaField{Name: "page_token", JSONName: "pageToken", schemaType: schemaType{Type: "string"}})
			skip[a.pageToken] = true
		} else {
			obj.Fields = append(obj.Fields, pageField("page"), pageField("page_size"))
			skip[a.page] = true
		}
		skip[a.pageSize] = true
	}
	seen := map[protoreflect.Name]bool{}
	if a.data != nil {
		fields := a.data.Message().Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i)
			if len(a.keyPath) == 2 && f == a.pk {
				continue
			}
			seen[f.Name()] = true
			obj.Fields = append(obj.Fields, b.field(f))
		}
	}
	fields := a.req.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if skip[f] || seen[f.Name()] {
			continue // a field of the resource of the same name wins
		}
		obj.Fields = append(obj.Fields, b.field(f))
	}
	return obj
}
