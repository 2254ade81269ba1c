package pubsub

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The response header of a Subscribe stream (docs/conventions.md,
// "Offsets and resume"). Serve sends HeaderOffset always, the other two when
// the request had a since.
const (
	// HeaderOffset is the position the stream starts after: the since of a
	// resubscribe that has seen no event of this stream yet.
	HeaderOffset = "x-bridge-offset"
	// HeaderRecovered is "true" when every event after the request's since
	// follows, "false" when some were no longer in the history.
	HeaderRecovered = "x-bridge-recovered"
	// HeaderReplayed is how many of the first messages of the stream are
	// the replay from history; the rest are live.
	HeaderReplayed = "x-bridge-replayed"
)

// Serve serves one Subscribe RPC end to end. It subscribes to topic with
// since (the request's since field, "" for none), then sends the stream's
// response header to signal that the subscription is live — the bridge
// confirms the subscription to its client only once the header arrives, so
// this order is the contract — and then sends toMsg(ev) for every event
// matching f: first those replayed after since, then the live ones.
//
// The header carries HeaderOffset, and with since HeaderRecovered and
// HeaderReplayed. When the message toMsg returns has a string field named
// offset that toMsg left empty, Serve sets it to the event's Offset.
//
// It returns nil when the stream's context ends, status UNAVAILABLE
// "server shutting down" when the broker closes, RESOURCE_EXHAUSTED when the
// subscriber fell behind, INTERNAL when toMsg fails, and Send's error when
// Send fails. If toMsg returns a nil message and no error, the event is
// skipped, which lets a backend apply checks a Filter cannot express.
func Serve[T any](stream grpc.ServerStreamingServer[T], b Broker, topic string, f Filter, since string, toMsg func(Event) (*T, error)) error {
	ctx := stream.Context()
	sub, err := b.Subscribe(ctx, topic, f, since)
	if err != nil {
		return endStatus(ctx, err)
	}
	defer sub.Close()
	conv := converter[T]{topic: topic, toMsg: toMsg}
	start := sub.Start()
	// The replay is converted before the header, which counts the messages it makes.
	var replay []*T
	for range start.Replayed {
		ev, ok := <-sub.Events()
		if !ok {
			return endStatus(ctx, sub.Err())
		}
		msg, err := conv.convert(ev)
		if err != nil {
			return err
		}
		if msg != nil {
			replay = append(replay, msg)
		}
	}
	md := metadata.Pairs(HeaderOffset, start.Offset)
	if since != "" {
		md.Set(HeaderRecovered, strconv.FormatBool(start.Recovered))
		md.Set(HeaderReplayed, strconv.Itoa(len(replay)))
	}
	if err := stream.SendHeader(md); err != nil {
		return err
	}
	for _, msg := range replay {
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	for ev := range sub.Events() {
		msg, err := conv.convert(ev)
		if err != nil {
			return err
		}
		if msg == nil {
			continue
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return endStatus(ctx, sub.Err())
}

// converter applies toMsg and fills the message's offset field.
type converter[T any] struct {
	topic  string
	toMsg  func(Event) (*T, error)
	looked bool
	offset protoreflect.FieldDescriptor // the message's string field offset, nil when none
}

func (c *converter[T]) convert(ev Event) (*T, error) {
	msg, err := c.toMsg(ev)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "converting %s event of %s %q: %v", ev.Action, c.topic, ev.PK, err)
	}
	if msg == nil || ev.Offset == "" {
		return msg, nil
	}
	pm, ok := any(msg).(proto.Message)
	if !ok {
		return msg, nil
	}
	m := pm.ProtoReflect()
	if !c.looked {
		c.looked = true
		fd := m.Descriptor().Fields().ByName("offset")
		if fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			c.offset = fd
		}
	}
	if c.offset != nil && m.Get(c.offset).String() == "" {
		m.Set(c.offset, protoreflect.ValueOfString(ev.Offset))
	}
	return msg, nil
}

// endStatus maps why a subscription ended, or could not start, to the
// RPC's result.
func endStatus(ctx context.Context, err error) error {
	switch {
	case err == nil, ctx.Err() != nil:
		return nil // the client went away; nobody reads the status
	case errors.Is(err, ErrClosed):
		return status.Error(codes.Unavailable, "server shutting down")
	case errors.Is(err, ErrSlowSubscriber):
		return status.Error(codes.ResourceExhausted, "subscriber too slow, events would have been lost")
	default:
		return status.Errorf(codes.Unavailable, "subscription ended: %v", err)
	}
}
