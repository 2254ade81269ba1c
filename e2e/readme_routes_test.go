package e2e_test

import (
	"os"
	"strings"
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
)

// The README lists every REST route of the example backend, so a new rule cannot go unlisted.
func TestReadmeListsEveryRESTRoute(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := bridge.LoadHTTPRules("../proto/polls/v1/polls_http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for sel, r := range rules {
		route := ""
		switch {
		case r.GetGet() != "":
			route = "GET " + r.GetGet()
		case r.GetPost() != "":
			route = "POST " + r.GetPost()
		case r.GetPut() != "":
			route = "PUT " + r.GetPut()
		case r.GetPatch() != "":
			route = "PATCH " + r.GetPatch()
		case r.GetDelete() != "":
			route = "DELETE " + r.GetDelete()
		}
		method := sel[strings.LastIndex(sel[:strings.LastIndex(sel, ".")], ".")+1:]
		if !strings.Contains(string(readme), "| `"+route+"` | `"+method+"` |") {
			t.Errorf("README does not list %s (%s)", route, method)
		}
	}
}
