package polls

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/wsbridge/wsbridge/pubsub"
)

// Topics the services publish their events on.
const (
	QuestionTopic = "polls.v1.Question"
	ChoiceTopic   = "polls.v1.Choice"
)

const schema = `
CREATE TABLE IF NOT EXISTS questions (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	question_text TEXT    NOT NULL,
	published     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS choices (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	question_id INTEGER NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
	choice_text TEXT    NOT NULL,
	votes       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS choices_question_id ON choices (question_id);
`

// Store keeps questions and choices in an SQLite file and publishes an event
// for every committed change. It is safe for concurrent use, also by several
// Stores (replicas) on the same file.
type Store struct {
	w   *sql.DB // one connection: SQLite has a single writer anyway
	r   *sql.DB // a pool: in WAL mode readers do not wait for the writer
	b   pubsub.Broker
	log *slog.Logger

	// mu spans a write transaction and the publishing of its events, so that
	// subscribers of this replica see events in commit order.
	mu sync.Mutex
}

// OpenStore opens (creating if needed) the SQLite database at path and
// publishes the changes made through it on b. A nil log means slog.Default().
func OpenStore(ctx context.Context, path string, b pubsub.Broker, log *slog.Logger) (*Store, error) {
	if path == "" {
		return nil, errors.New("polls: empty database path")
	}
	if b == nil {
		return nil, errors.New("polls: nil broker")
	}
	if log == nil {
		log = slog.Default()
	}
	// busy_timeout makes a connection wait for another's lock (the other
	// pool, or another replica) instead of failing with SQLITE_BUSY; writes
	// BEGIN IMMEDIATE so they take the write lock up front, where waiting
	// works, rather than failing on a later lock upgrade.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", base+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("polls: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	return &Store{w: w, r: r, b: b, log: log}, nil
}

// Close closes the database. It does not close the broker.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// event is a committed change to publish.
type event struct {
	topic  string
	action string
	pk     int64
	data   proto.Message // after the change; for a delete, as it was
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// write runs fn in a write transaction and, once it has committed, publishes
// the events fn returned.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) ([]event, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.dbError(ctx, err)
	}
	evs, err := fn(tx)
	if err != nil {
		tx.Rollback()
		return s.dbError(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return s.dbError(ctx, err)
	}
	// The change is made: publish it even if the caller has gone away.
	s.publish(context.WithoutCancel(ctx), evs)
	return nil
}

// read runs fn in a read transaction, so that what it reads is one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return s.dbError(ctx, err)
	}
	defer tx.Rollback()
	return s.dbError(ctx, fn(tx))
}

func (s *Store) publish(ctx context.Context, evs []event) {
	for _, ev := range evs {
		data, err := proto.Marshal(ev.data)
		if err == nil {
			err = s.b.Publish(ctx, ev.topic, pubsub.Event{Action: ev.action, PK: strconv.FormatInt(ev.pk, 10), Data: data})
		}
		if err != nil {
			// The database is the truth; a lost event only delays clients.
			s.log.Error("publish event", "topic", ev.topic, "action", ev.action, "pk", ev.pk, "err", err)
		}
	}
}

// dbError passes status errors through and turns any other error into
// INTERNAL (logged, not shown to the client) or the context's status.
func (s *Store) dbError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	s.log.Error("database", "err", err)
	return status.Error(codes.Internal, "internal error")
}

func notFound() error { return status.Error(codes.NotFound, "Not found.") }

// one maps the missing row of a single-row query to NOT_FOUND.
func one[T any](v T, err error) (T, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return v, notFound()
	}
	return v, err
}

// all scans every row of a query.
func all[T any](ctx context.Context, q querier, scan func(scanner) (*T, error), query string, args ...any) ([]*T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

// orNil returns v only without error, so no half-built message escapes.
func orNil[T any](v *T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
