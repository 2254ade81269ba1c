// Package natsbroker is a pubsub.Broker over NATS core publish/subscribe,
// for backends running as several replicas: an event published on any
// replica reaches the subscribers on every replica.
//
// Topic t travels on subject prefix+t (prefix DefaultSubjectPrefix by
// default), so a topic must be a valid NATS subject token sequence without
// wildcards, e.g. "polls.v1.Question". The connection must not use the
// NoEcho option: a replica's own subscribers receive its events through the
// server.
//
// NATS core delivers at most once: while a connection is down, events are
// lost. So that no subscriber silently misses any, losing the connection
// ends every subscription with ErrConnectionLost; its client resubscribes
// and reloads.
package natsbroker
