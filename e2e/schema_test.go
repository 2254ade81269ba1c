package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
)

// httpGet fetches a path of the bridge and returns the status, content type and body.
func (e *env) httpGet(path string) (int, string, []byte) {
	e.t.Helper()
	resp, err := http.Get(e.http.URL + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// schemaDoc is /schema decoded loosely, as a client would.
type schemaDoc struct {
	Streams  map[string]schemaStream `json:"streams"`
	Messages map[string]struct {
		Name   string        `json:"name"`
		Fields []schemaField `json:"fields"`
	} `json:"messages"`
}

type schemaStream struct {
	Stream     string         `json:"stream"`
	Service    string         `json:"service"`
	Model      string         `json:"model"`
	Permission *string        `json:"permission"`
	Effective  string         `json:"effective_permission"`
	Actions    []schemaAction `json:"actions"`
	Events     []string       `json:"events"`
	Subscribe  *struct {
		Method     string      `json:"method"`
		Permission *string     `json:"permission"`
		Effective  string      `json:"effective_permission"`
		PK         *schemaType `json:"pk"`
		Events     []string    `json:"events"`
		Event      schemaType  `json:"event"`
	} `json:"subscribe"`
}

type schemaAction struct {
	Name       string      `json:"name"`
	Kind       string      `json:"kind"`
	Scope      string      `json:"scope"`
	Detail     bool        `json:"detail"`
	Method     string      `json:"method"`
	Permission *string     `json:"permission"`
	Effective  string      `json:"effective_permission"`
	PK         *schemaType `json:"pk"`
	PKRequired bool        `json:"pk_required"`
	Data       schemaType  `json:"data"`
	Partial    bool        `json:"partial"`
	Status     int         `json:"status"`
	Reply      schemaType  `json:"reply"`
	Meta       *schemaType `json:"meta"`
}

type schemaType struct {
	Type      string        `json:"type"`
	Format    string        `json:"format"`
	Message   string        `json:"message"`
	Values    []string      `json:"values"`
	Items     *schemaType   `json:"items"`
	Fields    []schemaField `json:"fields"`
	WellKnown string        `json:"well_known"`
}

type schemaField struct {
	Name     string `json:"name"`
	JSONName string `json:"json_name"`
	Optional bool   `json:"optional"`
	schemaType
}

func (s schemaStream) action(t *testing.T, name string) schemaAction {
	t.Helper()
	for _, a := range s.Actions {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("stream %s has no action %q", s.Stream, name)
	return schemaAction{}
}

func fieldOf(t *testing.T, fields []schemaField, name string) schemaField {
	t.Helper()
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no field %q in %+v", name, fields)
	return schemaField{}
}

func fieldNames(fields []schemaField) string {
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	return strings.Join(names, ",")
}

func getSchema(t *testing.T, e *env) schemaDoc {
	t.Helper()
	status, ctype, body := e.httpGet("/schema")
	if status != http.StatusOK || ctype != "application/json" {
		t.Fatalf("GET /schema: %d %q: %s", status, ctype, body)
	}
	var doc schemaDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/schema is not JSON: %v", err)
	}
	return doc
}

func TestSchemaDescribesStreams(t *testing.T) {
	e := newEnv(t)
	doc := getSchema(t, e)

	if len(doc.Streams) != 2 {
		t.Fatalf("streams %v, want questions and choices", doc.Streams)
	}
	q := doc.Streams["questions"]
	if q.Stream != "questions" || q.Service != "polls.v1.QuestionService" || q.Model != "polls.v1.Question" {
		t.Fatalf("questions: %+v", q)
	}
	if q.Permission == nil {
		t.Fatal("questions has no permission field")
	}

	// Actions in method order, with their scope, method and success status.
	var names []string
	for _, a := range q.Actions {
		names = append(names, a.Name+":"+a.Scope)
	}
	if got, want := strings.Join(names, " "), "create:list retrieve:detail update:detail patch:detail list:list delete:detail publish:detail report:list"; got != want {
		t.Fatalf("questions actions %q, want %q", got, want)
	}
	create := q.action(t, "create")
	if create.Kind != "create" || create.Detail || create.PK != nil || create.Status != 201 ||
		create.Method != "/polls.v1.QuestionService/Create" || create.Permission == nil {
		t.Fatalf("create: %+v", create)
	}
	// create's data is the request's data message; its reply the response message.
	if create.Data.Type != "object" || create.Data.Message != "polls.v1.Question" || create.Reply.Message != "polls.v1.Question" {
		t.Fatalf("create data %+v reply %+v, want polls.v1.Question", create.Data, create.Reply)
	}
	retrieve := q.action(t, "retrieve")
	if !retrieve.Detail || !retrieve.PKRequired || retrieve.PK == nil || retrieve.PK.Type != "string" || retrieve.PK.Format != "int64" {
		t.Fatalf("retrieve: %+v (pk %+v), want a detail action with an int64 pk", retrieve, retrieve.PK)
	}
	// Without a data field, data's keys are the request's own fields but pk: none here.
	if retrieve.Data.Type != "object" || retrieve.Data.Message != "" || retrieve.Data.Fields == nil || len(retrieve.Data.Fields) != 0 {
		t.Fatalf("retrieve data %+v, want an empty inline object", retrieve.Data)
	}
	if p := q.action(t, "patch"); !p.Partial || p.Data.Message != "polls.v1.Question" {
		t.Fatalf("patch: %+v", p)
	}
	if d := q.action(t, "delete"); d.Reply.Type != "object" || d.Reply.Fields == nil || len(d.Reply.Fields) != 0 || d.Reply.Message != "" {
		t.Fatalf("delete reply %+v, want {}", d.Reply)
	}
	if p := q.action(t, "publish"); p.Kind != "custom" || !p.Detail || p.Reply.Message != "polls.v1.Question" {
		t.Fatalf("publish: %+v", p)
	}
	report := q.action(t, "report")
	if report.Kind != "custom" || report.Detail || report.PK != nil || report.Reply.Message != "polls.v1.ReportQuestionsResponse" {
		t.Fatalf("report: %+v", report)
	}

	// list: page and page_size in data, an array of the resource as reply, meta with count.
	list := q.action(t, "list")
	if got := fieldNames(list.Data.Fields); got != "page,page_size" {
		t.Fatalf("list data fields %q, want page,page_size", got)
	}
	if fieldOf(t, list.Data.Fields, "page").Type != "integer" {
		t.Fatalf("page: %+v", list.Data.Fields)
	}
	if list.Reply.Type != "array" || list.Reply.Items == nil || list.Reply.Items.Message != "polls.v1.Question" {
		t.Fatalf("list reply %+v, want an array of polls.v1.Question", list.Reply)
	}
	if list.Meta == nil || fieldNames(list.Meta.Fields) != "page,page_size,count" || fieldOf(t, list.Meta.Fields, "count").Type != "integer" {
		t.Fatalf("list meta %+v", list.Meta)
	}

	// The message: proto names, int64 as a JSON string, bool as boolean.
	qm, ok := doc.Messages["polls.v1.Question"]
	if !ok || qm.Name != "polls.v1.Question" {
		t.Fatalf("messages has no polls.v1.Question: %v", doc.Messages)
	}
	if got := fieldNames(qm.Fields); got != "id,question_text,published" {
		t.Fatalf("Question fields %q", got)
	}
	if f := fieldOf(t, qm.Fields, "id"); f.Type != "string" || f.Format != "int64" {
		t.Fatalf("id: %+v, want a string of format int64", f)
	}
	if f := fieldOf(t, qm.Fields, "question_text"); f.Type != "string" || f.Format != "" || f.JSONName != "questionText" {
		t.Fatalf("question_text: %+v", f)
	}
	if f := fieldOf(t, qm.Fields, "published"); f.Type != "boolean" {
		t.Fatalf("published: %+v", f)
	}
	if _, ok := doc.Messages["polls.v1.ReportQuestionsResponse"]; !ok {
		t.Fatal("messages lacks a message a reply refers to")
	}

	// Events: create, update, delete, with the event's shape.
	if strings.Join(q.Events, ",") != "create,update,delete" || q.Subscribe == nil {
		t.Fatalf("questions events %v subscribe %+v", q.Events, q.Subscribe)
	}
	if q.Subscribe.Method != "/polls.v1.QuestionService/Subscribe" || q.Subscribe.PK == nil || q.Subscribe.PK.Format != "int64" {
		t.Fatalf("subscribe: %+v", q.Subscribe)
	}
	ev := q.Subscribe.Event
	if got := fieldNames(ev.Fields); got != "action,pk,data,model" {
		t.Fatalf("event fields %q", got)
	}
	if d := fieldOf(t, ev.Fields, "data"); d.Message != "polls.v1.Question" {
		t.Fatalf("event data %+v", d)
	}

	// choices: int64 references as strings, an optional list filter, vote as a detail action.
	c := doc.Streams["choices"]
	if c.Model != "polls.v1.Choice" || strings.Join(c.Events, ",") != "create,update,delete" {
		t.Fatalf("choices: %+v", c)
	}
	cl := c.action(t, "list")
	if got := fieldNames(cl.Data.Fields); got != "page,page_size,question_id" {
		t.Fatalf("choices list data %q", got)
	}
	if f := fieldOf(t, cl.Data.Fields, "question_id"); !f.Optional || f.Type != "string" || f.Format != "int64" {
		t.Fatalf("question_id filter: %+v", f)
	}
	if v := c.action(t, "vote"); !v.Detail || v.Kind != "custom" || v.Reply.Message != "polls.v1.Choice" {
		t.Fatalf("vote: %+v", v)
	}
	cm := doc.Messages["polls.v1.Choice"]
	if got := fieldNames(cm.Fields); got != "id,question_id,choice_text,votes" {
		t.Fatalf("Choice fields %q", got)
	}
	for _, name := range []string{"id", "question_id", "votes"} {
		if f := fieldOf(t, cm.Fields, name); f.Type != "string" || f.Format != "int64" {
			t.Fatalf("Choice.%s: %+v, want int64 as a string", name, f)
		}
	}
}

// The schema's shapes match what the bridge really writes.
func TestSchemaMatchesReplies(t *testing.T) {
	e := newEnv(t)
	doc := getSchema(t, e)
	c := e.dial()
	id := c.createQuestion("Schema?")
	f := c.do("questions", map[string]any{"action": "retrieve", "pk": id})
	wantStatus(t, f, 200)
	for _, field := range doc.Messages["polls.v1.Question"].Fields {
		v, ok := f.data()[field.Name]
		if !ok {
			t.Fatalf("reply lacks %q: %s", field.Name, f.raw)
		}
		var got string
		switch v.(type) {
		case string:
			got = "string"
		case bool:
			got = "boolean"
		case float64:
			got = "integer"
		}
		if got != field.Type {
			t.Fatalf("%s is a JSON %s, the schema says %s", field.Name, got, field.Type)
		}
	}
}

// effective_permission is what the permission system resolved: the configured policy over
// the proto options over the default, allow_any.
func TestSchemaPermissions(t *testing.T) {
	doc := getSchema(t, newEnv(t))
	q := doc.Streams["questions"]
	if *q.Permission != "" || q.Effective != "allow_any" || q.action(t, "create").Effective != "allow_any" {
		t.Fatalf("default permissions: stream %q/%q, create %q", *q.Permission, q.Effective, q.action(t, "create").Effective)
	}

	doc = getSchema(t, newEnv(t, bridge.WithPolicy(bridge.Policy{
		Default: bridge.IsAuthenticated,
		Streams: map[string]bridge.StreamPolicy{"questions": {Actions: map[string]bridge.Permission{
			"create":    bridge.AllOf(bridge.IsAuthenticated, bridge.HasScope("polls.write")),
			"subscribe": bridge.HasRole("watcher"),
		}}},
	})))
	q = doc.Streams["questions"]
	for action, want := range map[string]string{"create": "is_authenticated scope:polls.write", "retrieve": "is_authenticated"} {
		if got := q.action(t, action).Effective; got != want {
			t.Errorf("%s: effective_permission %q, want %q", action, got, want)
		}
	}
	if got := q.Subscribe.Effective; got != "role:watcher" {
		t.Errorf("subscribe: effective_permission %q, want role:watcher", got)
	}
	if got := doc.Streams["choices"].Effective; got != "is_authenticated" {
		t.Errorf("choices: effective_permission %q, want is_authenticated", got)
	}
}

func TestSchemaCanBeSwitchedOff(t *testing.T) {
	e := newEnv(t, bridge.WithSchema(false))
	if status, _, _ := e.httpGet("/schema"); status != http.StatusNotFound {
		t.Fatalf("GET /schema with WithSchema(false): %d, want 404", status)
	}
	if e.bridge.Schema() == nil {
		t.Fatal("Server.Schema() must still describe the catalog")
	}
}

func TestDebugPage(t *testing.T) {
	off := newEnv(t)
	for _, path := range []string{"/debug/", "/debug/app.js"} {
		if status, _, _ := off.httpGet(path); status != http.StatusNotFound {
			t.Fatalf("GET %s by default: %d, want 404", path, status)
		}
	}

	on := newEnvFor(t, off.backend, bridge.WithDebugPage(true))
	status, ctype, body := on.httpGet("/debug/")
	if status != http.StatusOK || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(string(body), `data-testid="request-editor"`) {
		t.Fatalf("GET /debug/: %d %q: %.200s", status, ctype, body)
	}
	for path, want := range map[string]string{"/debug/app.js": "javascript", "/debug/style.css": "text/css"} {
		status, ctype, body := on.httpGet(path)
		if status != http.StatusOK || !strings.Contains(ctype, want) || len(body) == 0 {
			t.Fatalf("GET %s: %d %q (%d bytes)", path, status, ctype, len(body))
		}
	}
	resp, err := http.Get(on.http.URL + "/debug")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/debug/" {
		t.Fatalf("GET /debug: %d at %s, want a redirect to /debug/", resp.StatusCode, resp.Request.URL.Path)
	}
	if status, _, _ := on.httpGet("/debug/nope.js"); status != http.StatusNotFound {
		t.Fatalf("GET /debug/nope.js: %d, want 404", status)
	}
}
