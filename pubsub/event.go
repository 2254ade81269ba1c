package pubsub

import "slices"

// Actions a backend publishes.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
)

// Event is one change to a resource, as a backend publishes it.
//
// Brokers may hand the same Data slice to every subscriber without copying:
// neither the publisher nor a subscriber may modify it after Publish.
type Event struct {
	Action string // "create", "update" or "delete"
	PK     string // the resource key as text, e.g. "42"
	Data   []byte // the resource message in protobuf wire format (for delete: as it was)
	// Offset is the event's position, set by the broker on delivery (Publish
	// ignores it). It is opaque: its only use is as the since of a later
	// Subscribe to the same topic.
	Offset string
}

// Filter selects events; the zero Filter matches every event.
type Filter struct {
	PK      string   // "" matches any key
	Actions []string // empty matches any action
}

// Match reports whether ev passes the filter.
func (f Filter) Match(ev Event) bool {
	if f.PK != "" && f.PK != ev.PK {
		return false
	}
	return len(f.Actions) == 0 || slices.Contains(f.Actions, ev.Action)
}
