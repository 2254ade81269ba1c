package pubsub_test

import (
	"testing"

	"github.com/wsbridge/wsbridge/pubsub"
)

func TestFilterMatch(t *testing.T) {
	upd42 := ev(pubsub.ActionUpdate, "42")
	for _, tc := range []struct {
		name string
		f    pubsub.Filter
		want bool
	}{
		{"zero", pubsub.Filter{}, true},
		{"pk", pubsub.Filter{PK: "42"}, true},
		{"other pk", pubsub.Filter{PK: "4"}, false},
		{"action", pubsub.Filter{Actions: []string{pubsub.ActionCreate, pubsub.ActionUpdate}}, true},
		{"other action", pubsub.Filter{Actions: []string{pubsub.ActionDelete}}, false},
		{"pk and action", pubsub.Filter{PK: "42", Actions: []string{pubsub.ActionUpdate}}, true},
		{"pk but not action", pubsub.Filter{PK: "42", Actions: []string{pubsub.ActionCreate}}, false},
	} {
		if got := tc.f.Match(upd42); got != tc.want {
			t.Errorf("%s: %+v.Match(%+v) = %v, want %v", tc.name, tc.f, upd42, got, tc.want)
		}
	}
}
