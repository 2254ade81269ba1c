package bridge

import (
	"strconv"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Offsets and resume (docs/protocol.md, "Offsets and resume"; docs/conventions.md). Each
// upstream keeps its position: the x-bridge-offset of its stream's header, then the offset
// of each event it received, moved under up.mu with the fan-out. So:
//   - a subscribe without since that joins a live upstream is confirmed at the position
//     and gets exactly the events after it;
//   - a subscribe with since joins a live upstream only when since is its position;
//     otherwise it gets a catch-up upstream of its own, keyed with since, which subscribes
//     of the same filter and since share until the backend's header arrives. At its header
//     the catch-up upstream becomes the filter's shared upstream when there is none, and
//     else goes on alone (it is never merged into the shared one);
//   - a broken upstream is reopened with since = its position;
//   - subscribes without since that arrive while an upstream replays wait for the end of
//     the replay, so no subscription gets events from before it began.

// The response header of a Subscribe stream (pubsub.HeaderOffset and the others; the
// bridge does not import the backend kit).
const (
	headerOffset    = "x-bridge-offset"
	headerRecovered = "x-bridge-recovered"
	headerReplayed  = "x-bridge-replayed"
)

// MaxSinceBytes bounds data.since: a subscription keeps it.
const MaxSinceBytes = 255

var errInvalidSince = newError(400, "Invalid since.")

// resolveOffsets finds the offset convention's fields: the Subscribe request's since and
// the event's offset, both singular strings, or neither (the resource has no offsets).
func (s *subscribeMethod) resolveOffsets() {
	since := s.req.Fields().ByName("since")
	offset := s.event.Fields().ByName("offset")
	if !isStringField(since) || !isStringField(offset) {
		s.offsetsHalf = since != nil || offset != nil
		return
	}
	s.since, s.evOffset = since, offset
}

func isStringField(f protoreflect.FieldDescriptor) bool {
	return f != nil && !f.IsList() && f.Kind() == protoreflect.StringKind
}

// hasOffsets reports whether the resource follows the offset convention.
func (s *subscribeMethod) hasOffsets() bool { return s.evOffset != nil }

// eventOffset is an event's offset, "" when the resource has none.
func (s *subscribeMethod) eventOffset(ev *dynamicpb.Message) string {
	if s.evOffset == nil {
		return ""
	}
	return ev.Get(s.evOffset).String()
}

// decodeSince reads data.since: absent, null and "" are no since.
func decodeSince(raw []byte) (string, *errorReply) {
	if raw == nil || isNull(raw) {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok || len(s) > MaxSinceBytes {
		return "", errInvalidSince
	}
	return s, nil
}

// position is what a subscribe reply or resumed notice says about offsets.
type position struct {
	offset    string // "" on a stream without offsets: no offset key
	recovered bool
}

// streamHeader is what the backend's response header says about the stream's position.
type streamHeader struct {
	offset    string
	recovered bool
	replayed  int
}

func parseStreamHeader(md metadata.MD) streamHeader {
	var h streamHeader
	if v := md.Get(headerOffset); len(v) > 0 {
		h.offset = v[0]
	}
	if v := md.Get(headerRecovered); len(v) > 0 {
		h.recovered = v[0] == "true"
	}
	if v := md.Get(headerReplayed); len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n > 0 {
			h.replayed = n
		}
	}
	return h
}

// sinceForOpen is the since of the next Subscribe request: the position once a stream has
// been established, else the since the catch-up upstream was made for. Run goroutine only.
func (up *upstream) sinceForOpen() string {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.opened {
		return up.pos
	}
	return up.key.since
}

// joinableAt reports whether a subscribe with since can join this live upstream: since is
// its position and it is not replaying. Caller holds up.mu.
func (up *upstream) joinableAt(since string) bool {
	return up.live && up.replayLeft == 0 && up.pos != "" && up.pos == since
}

// settleCatchUp runs when a catch-up upstream gets its first header: it becomes the
// filter's shared upstream when there is none, else it leaves the map under a key of its
// own, so that a later subscribe with the same since does not join a stream already past
// it. Caller holds h.mu.
func (h *hub) settleCatchUp(up *upstream) {
	if h.upstreams[up.key] == up {
		delete(h.upstreams, up.key)
	}
	shared := up.key
	shared.since = ""
	if h.upstreams[shared] == nil {
		up.key = shared
	} else {
		h.serial++
		up.key.serial = h.serial
	}
	h.upstreams[up.key] = up
}

// advanceLocked moves the position past a message of the stream and, when it was the
// replay's last, confirms the subscribes that waited for the end of the replay. Caller
// holds up.mu.
func (up *upstream) advanceLocked(offset string) {
	if offset != "" {
		up.pos = offset
	}
	if up.replayLeft > 0 {
		up.replayLeft--
		if up.replayLeft == 0 {
			up.confirmPendingLocked()
		}
	}
}

// confirmPendingLocked confirms the subscribes without since waiting for the stream, at
// the position. Caller holds up.mu.
func (up *upstream) confirmPendingLocked() {
	for _, s := range up.pending {
		up.subs = append(up.subs, s)
		s.conn.send(s.confirm(false, position{offset: up.pos}))
	}
	up.pending = nil
}

// skip moves the position past a message no subscriber gets.
func (up *upstream) skip(offset string) {
	if offset == "" && up.replayLeft == 0 { // replayLeft is written by this goroutine only
		return
	}
	up.mu.Lock()
	up.advanceLocked(offset)
	up.mu.Unlock()
}

// warnHalfOffsets warns about resources with only half of the offset convention: they are
// served without offsets, which their authors probably did not mean.
func (s *Server) warnHalfOffsets(cat *catalog) {
	for _, name := range cat.names() {
		if sm := cat.streams[name].subscribe; sm != nil && sm.offsetsHalf {
			s.opts.logger.Warn("stream without offsets: its Subscribe request needs a string field since "+
				"and its event a string field offset (docs/conventions.md, \"Offsets and resume\")", "stream", name)
		}
	}
}
