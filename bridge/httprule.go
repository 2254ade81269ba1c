package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// HTTP rules (google.api.http) decide actions of services that carry them, between the
// bridge's own method option and the method names (docs/conventions.md).

// WithHTTPRules adds the HTTP rules of a grpc-gateway grpc_api_configuration file
// (google.api.Service YAML with http.rules), as a service already gives grpc-gateway. A rule
// here takes precedence over a google.api.http annotation of the same method. Default: none,
// only annotations found in the descriptors.
func WithHTTPRules(rules map[string]*annotations.HttpRule) Option {
	return optionFunc(func(o *options) {
		if o.httpRules == nil {
			o.httpRules = map[string]*annotations.HttpRule{}
		}
		for sel, r := range rules {
			o.httpRules[sel] = r
		}
	})
}

// LoadHTTPRules reads a grpc_api_configuration YAML file: its http.rules by selector
// (pkg.Service.Method).
func LoadHTTPRules(path string) (map[string]*annotations.HttpRule, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseHTTPRules(raw)
}

// ParseHTTPRules parses the YAML of a grpc_api_configuration file. Keys it does not know are
// an error, so a typo never silently drops a rule.
func ParseHTTPRules(raw []byte) (map[string]*annotations.HttpRule, error) {
	var doc struct {
		Type          string         `yaml:"type"`
		ConfigVersion any            `yaml:"config_version"`
		HTTP          map[string]any `yaml:"http"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("http rules: %v", err)
	}
	if doc.HTTP == nil {
		return nil, fmt.Errorf("http rules: no http section")
	}
	js, err := json.Marshal(doc.HTTP)
	if err != nil {
		return nil, fmt.Errorf("http rules: %v", err)
	}
	var h annotations.Http
	if err := protojson.Unmarshal(js, &h); err != nil {
		return nil, fmt.Errorf("http rules: %v", err)
	}
	out := make(map[string]*annotations.HttpRule, len(h.GetRules()))
	for i, r := range h.GetRules() {
		if r.GetSelector() == "" {
			return nil, fmt.Errorf("http rules: rule %d has no selector", i+1)
		}
		if _, err := parseHTTPRule(r); err != nil {
			return nil, fmt.Errorf("http rules: %s: %v", r.GetSelector(), err)
		}
		out[r.GetSelector()] = r
	}
	return out, nil
}

// httpRuleOf is the method's rule: from the configured rules, else its google.api.http
// annotation; nil when it has neither.
func httpRuleOf(md protoreflect.MethodDescriptor, rules map[string]*annotations.HttpRule) *annotations.HttpRule {
	if r := rules[string(md.FullName())]; r != nil {
		return r
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil {
		return nil
	}
	r, _ := extensionOf(opts, annotations.E_Http).(*annotations.HttpRule)
	return r
}

// extensionOf reads an extension. Descriptors from server reflection may carry it as
// unknown bytes when they were parsed without the extension registered; those are parsed
// again with the registry, where this package's import of annotations put it.
func extensionOf(opts proto.Message, xt protoreflect.ExtensionType) any {
	if proto.HasExtension(opts, xt) {
		return proto.GetExtension(opts, xt)
	}
	if len(opts.ProtoReflect().GetUnknown()) == 0 {
		return nil
	}
	raw, err := proto.Marshal(opts)
	if err != nil {
		return nil
	}
	again := opts.ProtoReflect().New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(raw, again); err != nil {
		return nil
	}
	if !proto.HasExtension(again, xt) {
		return nil
	}
	return proto.GetExtension(again, xt)
}

// httpMapping is what an HTTP rule says about a method.
type httpMapping struct {
	verb    string   // GET, POST, PUT, PATCH, DELETE, or a custom kind's name
	path    string   // the path template
	custom  string   // the custom verb after ':' ("publish"), "" when none
	detail  bool     // the path names one resource: it ends in a variable (before the verb)
	key     []string // the field path bound by that last variable, e.g. book.name
	coll    string   // the collection: the last literal before the end or the last variable's last '*'
	body    string   // "", "*" or a field name
	summary string   // "PATCH /v1/{book.name=shelves/*/books/*}" for the schema
}

func parseHTTPRule(r *annotations.HttpRule) (*httpMapping, error) {
	m := &httpMapping{body: r.GetBody()}
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		m.verb, m.path = http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		m.verb, m.path = http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		m.verb, m.path = http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		m.verb, m.path = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		m.verb, m.path = http.MethodDelete, p.Delete
	case *annotations.HttpRule_Custom:
		m.verb, m.path = strings.ToUpper(p.Custom.GetKind()), p.Custom.GetPath()
	default:
		return nil, fmt.Errorf("no HTTP method and path")
	}
	if !strings.HasPrefix(m.path, "/") {
		return nil, fmt.Errorf("path %q must start with /", m.path)
	}
	m.summary = m.verb + " " + m.path
	segs, verb, err := splitTemplate(m.path[1:])
	if err != nil {
		return nil, fmt.Errorf("path %q: %v", m.path, err)
	}
	m.custom = verb
	if len(segs) == 0 {
		return nil, fmt.Errorf("path %q is empty", m.path)
	}
	last := segs[len(segs)-1]
	if strings.HasPrefix(last, "{") {
		m.detail = true
		field, pattern, _ := strings.Cut(last[1:len(last)-1], "=")
		m.key = strings.Split(field, ".")
		// {name=shelves/*/books/*}: the collection is the literal before the last '*'.
		parts := strings.Split(pattern, "/")
		for i := len(parts) - 2; i >= 0; i-- {
			if parts[i] != "*" && parts[i] != "**" {
				m.coll = parts[i]
				break
			}
		}
		if m.coll == "" && len(segs) > 1 && !strings.HasPrefix(segs[len(segs)-2], "{") {
			m.coll = segs[len(segs)-2] // /v1/books/{id}
		}
	} else {
		m.coll = last
	}
	return m, nil
}

// splitTemplate splits a path template (without its leading '/') into segments, keeping
// each {variable=pattern} whole, and returns the custom verb after a final ':'.
func splitTemplate(p string) (segs []string, verb string, err error) {
	depth, start := 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth < 0 {
				return nil, "", fmt.Errorf("unbalanced }")
			}
		case '/':
			if depth == 0 {
				segs = append(segs, p[start:i])
				start = i + 1
			}
		case ':':
			if depth == 0 {
				verb = p[i+1:]
				segs = append(segs, p[start:i])
				if verb == "" || strings.ContainsAny(verb, "/{}") {
					return nil, "", fmt.Errorf("bad custom verb %q", verb)
				}
				return segs, verb, nil
			}
		}
	}
	if depth != 0 {
		return nil, "", fmt.Errorf("unbalanced {")
	}
	return append(segs, p[start:]), "", nil
}
