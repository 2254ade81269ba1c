package pubsub

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Serve serves one Subscribe RPC end to end. It subscribes to topic, then
// sends the stream's (empty) response header to signal that the
// subscription is live — the bridge confirms the subscription to its client
// only once the header arrives, so this order is the contract — and then
// sends toMsg(ev) for every event matching f.
//
// It returns nil when the stream's context ends, status UNAVAILABLE
// "server shutting down" when the broker closes, RESOURCE_EXHAUSTED when the
// subscriber fell behind, INTERNAL when toMsg fails, and Send's error when
// Send fails. If toMsg returns a nil message and no error, the event is
// skipped, which lets a backend apply checks a Filter cannot express.
func Serve[T any](stream grpc.ServerStreamingServer[T], b Broker, topic string, f Filter, toMsg func(Event) (*T, error)) error {
	ctx := stream.Context()
	var sub Subscription
	var err error
	if fb, ok := b.(FilteredBroker); ok {
		sub, err = fb.SubscribeFiltered(ctx, topic, f)
	} else {
		sub, err = b.Subscribe(ctx, topic)
	}
	if err != nil {
		return endStatus(ctx, err)
	}
	defer sub.Close()
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for ev := range sub.Events() {
		if !f.Match(ev) {
			continue
		}
		msg, err := toMsg(ev)
		if err != nil {
			return status.Errorf(codes.Internal, "converting %s event of %s %q: %v", ev.Action, topic, ev.PK, err)
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
