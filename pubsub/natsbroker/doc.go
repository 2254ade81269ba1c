// Package natsbroker is a pubsub.Broker over NATS JetStream, for backends
// running as several replicas: an event published on any replica reaches the
// subscribers on every replica, and a subscriber that resumes with since gets
// what it missed from the stream's history.
//
// Topic t travels on subject prefix+t (prefix DefaultSubjectPrefix by
// default), so a topic must be a valid NATS subject token sequence without
// wildcards, e.g. "polls.v1.Question". One JetStream stream captures every
// subject under the prefix; New creates it, or updates it to the options
// given. The NATS server must run with JetStream enabled (nats-server -js).
//
// An event's offset is its stream sequence, qualified by the stream's
// creation time, so that an offset from a stream that was deleted and
// created again is not taken for one of the new stream. The history is the
// stream's retention: pubsub.WithHistory events across all topics (default
// DefaultHistory) and WithMaxAge. Retention removes the oldest events first,
// which is what lets Subscribe tell whether it reached back to a since; do
// not give the stream a per-subject limit, and do not delete messages from
// it.
//
// Losing the connection ends every subscription with ErrConnectionLost, and
// any error of a subscription's consumer (a missed heartbeat, a deleted
// stream) ends that subscription; its subscriber resubscribes with the last
// offset it saw and loses nothing the history still holds.
package natsbroker
