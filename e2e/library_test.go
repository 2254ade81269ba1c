package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/wsbridge/wsbridge/bridge"
	libraryv1 "github.com/wsbridge/wsbridge/proto/library/v1"
)

// The library example is an unmodified AIP-style service: no bridge options, name keys,
// books nested under shelves, cursor pagination and a custom method. These tests drive every
// action of it through the bridge.

// libSchema is the part of /schema these tests read.
type libSchema struct {
	Streams map[string]struct {
		Model   string `json:"model"`
		Actions []struct {
			Name       string          `json:"name"`
			Kind       string          `json:"kind"`
			Scope      string          `json:"scope"`
			Rule       string          `json:"rule"`
			HTTP       string          `json:"http"`
			Method     string          `json:"method"`
			Pagination string          `json:"pagination"`
			Data       json.RawMessage `json:"data"`
			Meta       json.RawMessage `json:"meta"`
		} `json:"actions"`
		Subscribe any `json:"subscribe"`
	} `json:"streams"`
}

func getLibSchema(t *testing.T, e *env) libSchema {
	t.Helper()
	status, _, body := e.httpGet("/schema")
	if status != http.StatusOK {
		t.Fatalf("GET /schema: %d: %s", status, body)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	var doc libSchema
	if err := json.Unmarshal(compact.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// actionsOf lists a stream's actions as name:kind:scope:rule, in schema order.
func (d libSchema) actionsOf(stream string) string {
	var out []string
	for _, a := range d.Streams[stream].Actions {
		out = append(out, a.Name+":"+a.Kind+":"+a.Scope+":"+a.Rule)
	}
	return strings.Join(out, " ")
}

func TestLibrarySchemaByHTTPRules(t *testing.T) {
	e := newLibraryEnv(t, withLibraryRules(t))
	doc := getLibSchema(t, e)
	if len(doc.Streams) != 2 || doc.Streams["shelves"].Model != "library.v1.Shelf" || doc.Streams["books"].Model != "library.v1.Book" {
		t.Fatalf("streams: %+v", doc.Streams)
	}
	if got, want := doc.actionsOf("shelves"), "create:create:list:http retrieve:retrieve:detail:http list:list:list:http delete:delete:detail:http"; got != want {
		t.Errorf("shelves actions\n got %s\nwant %s", got, want)
	}
	if got, want := doc.actionsOf("books"), "create:create:list:http retrieve:retrieve:detail:http list:list:list:http update:update:detail:http patch:patch:detail:http delete:delete:detail:http move:custom:detail:http"; got != want {
		t.Errorf("books actions\n got %s\nwant %s", got, want)
	}
	for _, a := range doc.Streams["books"].Actions {
		switch a.Name {
		case "patch":
			if a.HTTP != "PATCH /v1/{book.name=shelves/*/books/*}" || a.Method != "/library.v1.LibraryService/UpdateBook" {
				t.Errorf("patch: %+v", a)
			}
		case "create":
			// data: the book's fields but its name (assigned), then the request's others.
			if !strings.Contains(string(a.Data), `"name":"title"`) || !strings.Contains(string(a.Data), `"name":"parent"`) ||
				!strings.Contains(string(a.Data), `"name":"validate_only"`) || strings.Contains(string(a.Data), `"name":"book"`) {
				t.Errorf("create data %s", a.Data)
			}
		case "list":
			if a.Pagination != "cursor" || !strings.Contains(string(a.Meta), `"name":"next_page_token"`) || strings.Contains(string(a.Meta), `"name":"page"`) ||
				!strings.Contains(string(a.Data), `"name":"page_token"`) || !strings.Contains(string(a.Data), `"name":"parent"`) {
				t.Errorf("list: pagination %q data %s meta %s", a.Pagination, a.Data, a.Meta)
			}
		}
	}
	if doc.Streams["books"].Subscribe != nil {
		t.Errorf("books has a subscribe: %v", doc.Streams["books"].Subscribe)
	}
}

func TestLibraryShelves(t *testing.T) {
	c := newLibraryEnv(t, withLibraryRules(t)).dial()
	var names []string
	for _, theme := range []string{"Fiction", "Poetry", "History"} {
		f := c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": theme}})
		wantStatus(t, f, 201)
		names = append(names, f.data()["name"].(string))
	}
	if names[0] != "shelves/1" || names[2] != "shelves/3" {
		t.Fatalf("shelf names %v", names)
	}
	wantErrors(t, c.do("shelves", map[string]any{"action": "create", "data": map[string]any{}}), 400, `[{"theme":["This field may not be blank."]}]`)

	f := c.do("shelves", map[string]any{"action": "retrieve", "pk": "shelves/2"})
	wantStatus(t, f, 200)
	if f.data()["theme"] != "Poetry" || f.data()["name"] != "shelves/2" {
		t.Fatalf("retrieve: %s", f.raw)
	}
	wantErrors(t, c.do("shelves", map[string]any{"action": "retrieve", "pk": "shelves/9"}), 404, `["Not found."]`)
	wantErrors(t, c.do("shelves", map[string]any{"action": "retrieve"}), 404, `["Not found."]`)

	// Cursor pagination: page_size and page_token in, next_page_token out.
	f = c.do("shelves", map[string]any{"action": "list", "data": map[string]any{"page_size": 2}})
	wantStatus(t, f, 200)
	meta, _ := f.Payload["meta"].(map[string]any)
	token, _ := meta["next_page_token"].(string)
	if len(f.list()) != 2 || token == "" || meta["page_size"] != float64(2) || meta["page"] != nil {
		t.Fatalf("first page: %s", f.raw)
	}
	f = c.do("shelves", map[string]any{"action": "list", "data": map[string]any{"page_size": 2, "page_token": token}})
	wantStatus(t, f, 200)
	meta, _ = f.Payload["meta"].(map[string]any)
	if len(f.list()) != 1 || f.list()[0].(map[string]any)["name"] != "shelves/3" || meta["next_page_token"] != "" {
		t.Fatalf("last page: %s", f.raw)
	}
	wantErrors(t, c.do("shelves", map[string]any{"action": "list", "data": map[string]any{"page": 2}}), 400,
		`[{"page":["This list is paginated by cursor: send page_token (the previous reply's meta.next_page_token) instead of page."]}]`)
	wantErrors(t, c.do("shelves", map[string]any{"action": "list", "data": map[string]any{"page_token": "junk"}}), 400,
		`[{"page_token":["Not a page token of this list."]}]`)

	// Other request fields travel in data: delete's force.
	wantStatus(t, c.do("books", map[string]any{"action": "create", "data": map[string]any{"parent": "shelves/1", "title": "Dune"}}), 201)
	f = c.do("shelves", map[string]any{"action": "delete", "pk": "shelves/1"})
	wantStatus(t, f, 400)
	if !strings.Contains(f.errors(), "set force") {
		t.Fatalf("delete a shelf with books: %s", f.raw)
	}
	f = c.do("shelves", map[string]any{"action": "delete", "pk": "shelves/1", "data": map[string]any{"force": true}})
	wantStatus(t, f, 200)
	if string(mustJSON(t, f.Payload["data"])) != `{}` {
		t.Fatalf("delete: %s", f.raw)
	}
	wantErrors(t, c.do("shelves", map[string]any{"action": "retrieve", "pk": "shelves/1"}), 404, `["Not found."]`)
}

func TestLibraryBooks(t *testing.T) {
	c := newLibraryEnv(t, withLibraryRules(t)).dial()
	for _, theme := range []string{"Fiction", "Classics"} {
		wantStatus(t, c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": theme}}), 201)
	}

	// create: data fills the request's book, and parent and book_id, the request itself.
	f := c.do("books", map[string]any{"action": "create", "data": map[string]any{
		"parent": "shelves/1", "book_id": "dune", "title": "Dune", "author": "Frank Herbert",
	}})
	wantStatus(t, f, 201)
	if got := string(mustJSON(t, f.data())); got != `{"author":"Frank Herbert","name":"shelves/1/books/dune","read":false,"title":"Dune"}` {
		t.Fatalf("create: %s", f.raw)
	}
	// validate_only: checked, not stored.
	f = c.do("books", map[string]any{"action": "create", "data": map[string]any{
		"parent": "shelves/1", "title": "Emma", "author": "Jane Austen", "validate_only": true,
	}})
	wantStatus(t, f, 201)
	wantErrors(t, c.do("books", map[string]any{"action": "create", "data": map[string]any{"title": "Orphan"}}), 400,
		`[{"parent":["Must be a shelf name such as shelves/1."]}]`)
	wantErrors(t, c.do("books", map[string]any{"action": "create", "data": map[string]any{"parent": "shelves/1", "title": "X", "isbn": "1"}}), 400,
		`[{"isbn":["Unknown field."]}]`)
	wantStatus(t, c.do("books", map[string]any{"action": "create", "data": map[string]any{"parent": "shelves/1", "title": "Emma", "author": "Jane Austen"}}), 201)

	// list under the shelf, with total_size.
	f = c.do("books", map[string]any{"action": "list", "data": map[string]any{"parent": "shelves/1"}})
	wantStatus(t, f, 200)
	meta, _ := f.Payload["meta"].(map[string]any)
	if len(f.list()) != 2 || meta["total_size"] != float64(2) || meta["next_page_token"] != "" {
		t.Fatalf("list: %s", f.raw)
	}
	f = c.do("books", map[string]any{"action": "list", "data": map[string]any{"parent": "shelves/2"}})
	if wantStatus(t, f, 200); len(f.list()) != 0 {
		t.Fatalf("list of shelf 2: %s", f.raw)
	}

	f = c.do("books", map[string]any{"action": "retrieve", "pk": "shelves/1/books/dune"})
	wantStatus(t, f, 200)
	if f.data()["title"] != "Dune" {
		t.Fatalf("retrieve: %s", f.raw)
	}

	// patch: the keys sent fill update_mask; the others stay.
	f = c.do("books", map[string]any{"action": "patch", "pk": "shelves/1/books/dune", "data": map[string]any{"read": true}})
	wantStatus(t, f, 200)
	if got := string(mustJSON(t, f.data())); got != `{"author":"Frank Herbert","name":"shelves/1/books/dune","read":true,"title":"Dune"}` {
		t.Fatalf("patch: %s", f.raw)
	}
	// update: a full replacement (update_mask "*"): author, not sent, is cleared.
	f = c.do("books", map[string]any{"action": "update", "pk": "shelves/1/books/dune", "data": map[string]any{"title": "Dune Messiah"}})
	wantStatus(t, f, 200)
	if got := string(mustJSON(t, f.data())); got != `{"author":"","name":"shelves/1/books/dune","read":false,"title":"Dune Messiah"}` {
		t.Fatalf("update: %s", f.raw)
	}
	wantErrors(t, c.do("books", map[string]any{"action": "patch", "pk": "shelves/1/books/nope", "data": map[string]any{"read": true}}), 404, `["Not found."]`)
	wantErrors(t, c.do("books", map[string]any{"action": "patch", "data": map[string]any{"read": true}}), 404, `["Not found."]`)

	// The custom method, by its HTTP rule's verb: a detail action.
	f = c.do("books", map[string]any{"action": "move", "pk": "shelves/1/books/dune", "data": map[string]any{"other_shelf_name": "shelves/2"}})
	wantStatus(t, f, 200)
	if f.data()["name"] != "shelves/2/books/dune" {
		t.Fatalf("move: %s", f.raw)
	}
	wantErrors(t, c.do("books", map[string]any{"action": "retrieve", "pk": "shelves/1/books/dune"}), 404, `["Not found."]`)

	f = c.do("books", map[string]any{"action": "delete", "pk": "shelves/2/books/dune"})
	wantStatus(t, f, 200)
	wantErrors(t, c.do("books", map[string]any{"action": "retrieve", "pk": "shelves/2/books/dune"}), 404, `["Not found."]`)
	wantErrors(t, c.do("books", map[string]any{"action": "delete", "pk": "shelves/2/books/dune"}), 404, `["Not found."]`)

	// No event stream on this service.
	wantErrors(t, c.do("books", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}}), 501,
		`["This stream has no events: its service has no Subscribe method following the bridge's event convention."]`)
	wantErrors(t, c.do("books", map[string]any{"action": "publish", "pk": "shelves/1/books/b1"}), 400, `["Invalid Action"]`)
}

// Without HTTP rules the same service maps by AIP's method names alone.
func TestLibraryByMethodNames(t *testing.T) {
	e := newLibraryEnv(t)
	doc := getLibSchema(t, e)
	if got, want := doc.actionsOf("books"), "create:create:list:name retrieve:retrieve:detail:name list:list:list:name update:update:detail:name patch:patch:detail:name delete:delete:detail:name move_book:custom:detail:name"; got != want {
		t.Errorf("books actions\n got %s\nwant %s", got, want)
	}
	c := e.dial()
	wantStatus(t, c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": "A"}}), 201)
	wantStatus(t, c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": "B"}}), 201)
	f := c.do("books", map[string]any{"action": "create", "data": map[string]any{"parent": "shelves/1", "title": "Dune"}})
	wantStatus(t, f, 201)
	name := f.data()["name"].(string)
	f = c.do("books", map[string]any{"action": "patch", "pk": name, "data": map[string]any{"author": "Frank Herbert"}})
	if wantStatus(t, f, 200); f.data()["title"] != "Dune" || f.data()["author"] != "Frank Herbert" {
		t.Fatalf("patch: %s", f.raw)
	}
	f = c.do("books", map[string]any{"action": "move_book", "pk": name, "data": map[string]any{"other_shelf_name": "shelves/2"}})
	if wantStatus(t, f, 200); !strings.HasPrefix(f.data()["name"].(string), "shelves/2/books/") {
		t.Fatalf("move_book: %s", f.raw)
	}
	wantStatus(t, c.do("books", map[string]any{"action": "delete", "pk": f.data()["name"]}), 200)
}

// From a descriptor set, a service without bridge options is kept when it is AIP-style.
func TestLibraryFromDescriptorSet(t *testing.T) {
	files, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(emptypb.File_google_protobuf_empty_proto),
		protodesc.ToFileDescriptorProto(fieldmaskpb.File_google_protobuf_field_mask_proto),
		protodesc.ToFileDescriptorProto(libraryv1.File_library_v1_library_proto),
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := newLibraryEnv(t, bridge.WithDescriptors(files), withLibraryRules(t))
	if got := exposedStreams(t, e); got != "books,shelves" {
		t.Fatalf("streams %s", got)
	}
	c := e.dial()
	f := c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": "Maps"}})
	wantStatus(t, f, 201)
	wantStatus(t, c.do("shelves", map[string]any{"action": "retrieve", "pk": f.data()["name"]}), 200)
}

// -stream pkg.Message=name renames a resource's stream.
func TestLibraryStreamRenamed(t *testing.T) {
	e := newLibraryEnv(t, bridge.WithStream("library.v1.Book", "volumes"))
	if got := exposedStreams(t, e); got != "shelves,volumes" {
		t.Fatalf("streams %s", got)
	}
	c := e.dial()
	wantStatus(t, c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": "Maps"}}), 201)
	wantStatus(t, c.do("volumes", map[string]any{"action": "create", "data": map[string]any{"parent": "shelves/1", "title": "Atlas"}}), 201)
	wantErrors(t, c.do("books", map[string]any{"action": "list"}), 404, `["Unknown stream."]`)
}

// -stream pkg.Message=- and pkg.Service=- hide what the bridge would expose.
func TestLibraryHidden(t *testing.T) {
	e := newLibraryEnv(t, bridge.WithStream("library.v1.Shelf", "-"))
	if got := exposedStreams(t, e); got != "books" {
		t.Fatalf("streams %s, want books alone", got)
	}
	wantErrors(t, e.dial().do("shelves", map[string]any{"action": "list"}), 404, `["Unknown stream."]`)
	e = newLibraryEnv(t, bridge.WithStream("library.v1.LibraryService", "-"))
	if got := exposedStreams(t, e); got != "" {
		t.Fatalf("streams %q, want none", got)
	}
}
