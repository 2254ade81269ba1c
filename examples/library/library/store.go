package library

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

const schema = `
CREATE TABLE IF NOT EXISTS shelves (
	id    INTEGER PRIMARY KEY AUTOINCREMENT,
	theme TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS books (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	shelf_id INTEGER NOT NULL REFERENCES shelves (id) ON DELETE CASCADE,
	book_id  TEXT    NOT NULL,
	title    TEXT    NOT NULL,
	author   TEXT    NOT NULL,
	read     INTEGER NOT NULL DEFAULT 0,
	UNIQUE (shelf_id, book_id)
);
`

// Store keeps shelves and books in an SQLite file.
type Store struct {
	db *sql.DB
}

// OpenStore opens, creating if needed, the database at path.
func OpenStore(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("library: DBPath is required")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // SQLite has one writer; one connection keeps this example simple
	if _, err := db.ExecContext(context.Background(), schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("library: schema: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
