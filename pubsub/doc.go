// Package pubsub is the backend kit for serving the Subscribe RPC that the
// wsbridge bridge calls on every resource service.
//
// A backend publishes each change to a resource as an [Event] on a [Broker]:
//
//	data, err := proto.Marshal(q)
//	...
//	err = s.broker.Publish(ctx, "polls.v1.Question", pubsub.Event{
//		Action: pubsub.ActionUpdate, PK: strconv.FormatInt(q.GetId(), 10), Data: data,
//	})
//
// and implements its server-streaming Subscribe RPC with [Serve]:
//
//	func (s *server) Subscribe(req *pollsv1.SubscribeQuestionsRequest, stream grpc.ServerStreamingServer[pollsv1.QuestionEvent]) error {
//		f := pubsub.Filter{Actions: req.GetActions()}
//		if req.Pk != nil {
//			f.PK = strconv.FormatInt(req.GetPk(), 10)
//		}
//		return pubsub.Serve(stream, s.broker, "polls.v1.Question", f, req.GetSince(), func(ev pubsub.Event) (*pollsv1.QuestionEvent, error) {
//			q := new(pollsv1.Question)
//			if err := proto.Unmarshal(ev.Data, q); err != nil {
//				return nil, err
//			}
//			return &pollsv1.QuestionEvent{Action: ev.Action, Pk: q.GetId(), Data: q}, nil // Serve fills Offset
//		})
//	}
//
// # Topics
//
// A topic is any string agreed between publisher and subscriber. Use the
// full name of the resource message, e.g. "polls.v1.Question", so that one
// topic carries every change of one resource type and [Filter] narrows it per
// subscriber.
//
// # The liveness contract
//
// The bridge confirms a subscription to its WebSocket client only once the
// backend has sent the response header of the Subscribe stream; the client
// may then rely on seeing every later change. [Serve] therefore subscribes to
// the broker first and sends the (empty) header second, and every Broker
// guarantees that once Subscribe returns, every later Publish, from this or
// any other replica, reaches the subscription. A backend that writes its own
// Subscribe handler must keep that order.
//
// # Offsets and resume
//
// Every delivered event carries an Offset, its position, opaque to everyone
// but its broker. A subscriber that lost its subscription subscribes again
// with since, the last offset it saw (or the Start.Offset of a subscription
// that saw none): the broker replays the events after it from its history,
// then continues live, with no gap and no duplicate, and Start.Recovered says
// whether the history still reached back that far. [Serve] tells the bridge
// all of this in the stream's response header ([HeaderOffset],
// [HeaderRecovered], [HeaderReplayed]) and fills the event message's offset
// field; the convention is in the repository's docs/conventions.md.
//
// [MemoryBroker] numbers each topic's events and keeps the last [WithHistory]
// of them (default [DefaultHistory]); its offsets do not survive a restart of
// the process (they are then not recovered). natsbroker keeps the history in a
// JetStream stream, shared by the replicas and kept across restarts.
//
// # Delivery
//
// Each subscription has a bounded buffer. Events reach a subscription in the
// order they were published on a topic; an event is never silently dropped
// for a subscription that stays subscribed: a subscriber that falls behind
// is ended with [ErrSlowSubscriber] ([Serve] reports RESOURCE_EXHAUSTED) so
// that its client knows to resubscribe and reload.
//
// [MemoryBroker] fans out within one process. A backend running as several
// replicas uses a distributed Broker such as the one in package
// github.com/wsbridge/wsbridge/pubsub/natsbroker, so that a change made on
// one replica reaches subscribers connected to any of them.
//
// Brokers apply the [Filter] themselves, before they hand an event over;
// [MemoryBroker] indexes subscriptions by key, so a change wakes only the
// subscriptions that watch its key or every key, however many watch other keys.
//
// # Shutdown
//
// Closing the Broker ends every subscription with [ErrClosed]; [Serve] then
// returns UNAVAILABLE "server shutting down", which tells the bridge to
// reconnect to another replica. Close the Broker before grpc.Server.GracefulStop,
// otherwise GracefulStop waits forever for the open Subscribe streams.
package pubsub
