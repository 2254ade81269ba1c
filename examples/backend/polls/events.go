package polls

import (
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/wsbridge/wsbridge/pubsub"
)

var actions = []string{pubsub.ActionCreate, pubsub.ActionUpdate, pubsub.ActionDelete}

// filter builds the event filter of a Subscribe request.
func filter(pk *int64, acts []string) (pubsub.Filter, error) {
	var v violations
	for _, a := range acts {
		if !slices.Contains(actions, a) {
			v.add("actions", fmt.Sprintf("%q is not a valid choice.", a))
		}
	}
	if err := v.err("invalid subscription"); err != nil {
		return pubsub.Filter{}, err
	}
	f := pubsub.Filter{Actions: acts}
	if pk != nil {
		f.PK = strconv.FormatInt(*pk, 10)
	}
	return f, nil
}

// decode returns the key and the resource of an event.
func decode[T any, P interface {
	*T
	proto.Message
}](ev pubsub.Event) (int64, P, error) {
	m := P(new(T))
	pk, err := strconv.ParseInt(ev.PK, 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("event key %q: %w", ev.PK, err)
	}
	return pk, m, proto.Unmarshal(ev.Data, m)
}
