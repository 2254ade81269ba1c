package library

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	libraryv1 "github.com/wsbridge/wsbridge/proto/library/v1"
)

// Page sizes, as AIP-158 has them: 0 is the default, larger ones are capped.
const (
	defaultPageSize = 10
	maxPageSize     = 100
)

type service struct {
	libraryv1.UnimplementedLibraryServiceServer
	store *Store
}

func notFound(name string) error { return status.Errorf(codes.NotFound, "%s not found", name) }

// invalid is an InvalidArgument carrying a google.rpc.BadRequest, which the bridge turns into
// DRF-style field errors.
func invalid(field, desc string) error {
	st := status.New(codes.InvalidArgument, field+": "+desc)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}}); err == nil {
		return d.Err()
	}
	return st.Err()
}

func internal(err error) error { return status.Errorf(codes.Internal, "database: %v", err) }

// parseShelf reads shelves/{id}.
func parseShelf(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, "shelves/")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil && id > 0
}

// parseBook reads shelves/{id}/books/{book}.
func parseBook(name string) (int64, string, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "shelves" || parts[2] != "books" || parts[3] == "" {
		return 0, "", false
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	return id, parts[3], err == nil && id > 0
}

func shelfName(id int64) string { return "shelves/" + strconv.FormatInt(id, 10) }

// Page tokens are opaque to clients: the offset, encoded.
func encodeToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodeToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if n, ok := strings.CutPrefix(string(raw), "offset:"); ok {
			if off, err := strconv.Atoi(n); err == nil && off >= 0 {
				return off, nil
			}
		}
	}
	return 0, invalid("page_token", "Not a page token of this list.")
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size", "Must not be negative.")
	case n == 0:
		return defaultPageSize, nil
	}
	return min(int(n), maxPageSize), nil
}

func (s *service) CreateShelf(ctx context.Context, req *libraryv1.CreateShelfRequest) (*libraryv1.Shelf, error) {
	theme := req.GetShelf().GetTheme()
	if theme == "" {
		return nil, invalid("theme", "This field may not be blank.")
	}
	res, err := s.store.db.ExecContext(ctx, `INSERT INTO shelves (theme) VALUES (?)`, theme)
	if err != nil {
		return nil, internal(err)
	}
	id, _ := res.LastInsertId()
	return &libraryv1.Shelf{Name: shelfName(id), Theme: theme}, nil
}

func (s *service) GetShelf(ctx context.Context, req *libraryv1.GetShelfRequest) (*libraryv1.Shelf, error) {
	id, ok := parseShelf(req.GetName())
	if !ok {
		return nil, notFound(req.GetName())
	}
	var theme string
	err := s.store.db.QueryRowContext(ctx, `SELECT theme FROM shelves WHERE id = ?`, id).Scan(&theme)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(req.GetName())
	} else if err != nil {
		return nil, internal(err)
	}
	return &libraryv1.Shelf{Name: shelfName(id), Theme: theme}, nil
}

func (s *service) ListShelves(ctx context.Context, req *libraryv1.ListShelvesRequest) (*libraryv1.ListShelvesResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	off, err := decodeToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	rows, err := s.store.db.QueryContext(ctx, `SELECT id, theme FROM shelves ORDER BY id LIMIT ? OFFSET ?`, size+1, off)
	if err != nil {
		return nil, internal(err)
	}
	defer rows.Close()
	resp := &libraryv1.ListShelvesResponse{}
	for rows.Next() {
		var id int64
		var theme string
		if err := rows.Scan(&id, &theme); err != nil {
			return nil, internal(err)
		}
		resp.Shelves = append(resp.Shelves, &libraryv1.Shelf{Name: shelfName(id), Theme: theme})
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err)
	}
	if len(resp.Shelves) > size {
		resp.Shelves = resp.Shelves[:size]
		resp.NextPageToken = encodeToken(off + size)
	}
	return resp, nil
}

func (s *service) DeleteShelf(ctx context.Context, req *libraryv1.DeleteShelfRequest) (*emptypb.Empty, error) {
	id, ok := parseShelf(req.GetName())
	if !ok {
		return nil, notFound(req.GetName())
	}
	tx, err := s.store.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, internal(err)
	}
	defer tx.Rollback()
	var books int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM books WHERE shelf_id = ?`, id).Scan(&books); err != nil {
		return nil, internal(err)
	}
	if books > 0 && !req.GetForce() {
		return nil, status.Errorf(codes.FailedPrecondition, "%s has %d books; set force to delete them too", req.GetName(), books)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM shelves WHERE id = ?`, id)
	if err != nil {
		return nil, internal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFound(req.GetName())
	}
	if err := tx.Commit(); err != nil {
		return nil, internal(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) shelfExists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id int64) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM shelves WHERE id = ?`, id).Scan(&n)
	return n > 0, err
}

func validBookID(id string) bool {
	if id == "" || len(id) > 63 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (s *service) CreateBook(ctx context.Context, req *libraryv1.CreateBookRequest) (*libraryv1.Book, error) {
	shelf, ok := parseShelf(req.GetParent())
	if !ok {
		return nil, invalid("parent", "Must be a shelf name such as shelves/1.")
	}
	b := req.GetBook()
	if b.GetTitle() == "" {
		return nil, invalid("title", "This field may not be blank.")
	}
	bookID := req.GetBookId()
	if bookID != "" && !validBookID(bookID) {
		return nil, invalid("book_id", "Use 1 to 63 lowercase letters, digits and hyphens.")
	}
	tx, err := s.store.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, internal(err)
	}
	defer tx.Rollback()
	if ok, err := s.shelfExists(ctx, tx, shelf); err != nil {
		return nil, internal(err)
	} else if !ok {
		return nil, notFound(req.GetParent())
	}
	out := &libraryv1.Book{Title: b.GetTitle(), Author: b.GetAuthor(), Read: b.GetRead()}
	if req.GetValidateOnly() {
		if bookID != "" {
			out.Name = req.GetParent() + "/books/" + bookID
		}
		return out, nil
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO books (shelf_id, book_id, title, author, read) VALUES (?, ?, ?, ?, ?)`,
		shelf, bookID, out.Title, out.Author, out.Read)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return nil, status.Errorf(codes.AlreadyExists, "%s/books/%s already exists", req.GetParent(), bookID)
		}
		return nil, internal(err)
	}
	if bookID == "" {
		seq, _ := res.LastInsertId()
		bookID = "b" + strconv.FormatInt(seq, 10)
		if _, err := tx.ExecContext(ctx, `UPDATE books SET book_id = ? WHERE seq = ?`, bookID, seq); err != nil {
			return nil, internal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, internal(err)
	}
	out.Name = req.GetParent() + "/books/" + bookID
	return out, nil
}

func (s *service) getBook(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) (*libraryv1.Book, error) {
	shelf, id, ok := parseBook(name)
	if !ok {
		return nil, notFound(name)
	}
	b := &libraryv1.Book{Name: name}
	err := q.QueryRowContext(ctx, `SELECT title, author, read FROM books WHERE shelf_id = ? AND book_id = ?`, shelf, id).
		Scan(&b.Title, &b.Author, &b.Read)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(name)
	} else if err != nil {
		return nil, internal(err)
	}
	return b, nil
}

func (s *service) GetBook(ctx context.Context, req *libraryv1.GetBookRequest) (*libraryv1.Book, error) {
	return s.getBook(ctx, s.store.db, req.GetName())
}

func (s *service) ListBooks(ctx context.Context, req *libraryv1.ListBooksRequest) (*libraryv1.ListBooksResponse, error) {
	shelf, ok := parseShelf(req.GetParent())
	if !ok {
		return nil, invalid("parent", "Must be a shelf name such as shelves/1.")
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	off, err := decodeToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	tx, err := s.store.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, internal(err)
	}
	defer tx.Rollback()
	if ok, err := s.shelfExists(ctx, tx, shelf); err != nil {
		return nil, internal(err)
	} else if !ok {
		return nil, notFound(req.GetParent())
	}
	resp := &libraryv1.ListBooksResponse{}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM books WHERE shelf_id = ?`, shelf).Scan(&resp.TotalSize); err != nil {
		return nil, internal(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT book_id, title, author, read FROM books WHERE shelf_id = ? ORDER BY seq LIMIT ? OFFSET ?`, shelf, size+1, off)
	if err != nil {
		return nil, internal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		b := &libraryv1.Book{}
		if err := rows.Scan(&id, &b.Title, &b.Author, &b.Read); err != nil {
			return nil, internal(err)
		}
		b.Name = req.GetParent() + "/books/" + id
		resp.Books = append(resp.Books, b)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err)
	}
	if len(resp.Books) > size {
		resp.Books = resp.Books[:size]
		resp.NextPageToken = encodeToken(off + size)
	}
	return resp, nil
}

// UpdateBook applies update_mask as AIP-134 has it: "*" replaces every field, an empty mask
// updates the fields the request sets, and a field's path updates that field.
func (s *service) UpdateBook(ctx context.Context, req *libraryv1.UpdateBookRequest) (*libraryv1.Book, error) {
	in := req.GetBook()
	tx, err := s.store.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, internal(err)
	}
	defer tx.Rollback()
	b, err := s.getBook(ctx, tx, in.GetName())
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		if in.GetTitle() != "" {
			paths = append(paths, "title")
		}
		if in.GetAuthor() != "" {
			paths = append(paths, "author")
		}
		if in.GetRead() {
			paths = append(paths, "read")
		}
	}
	for _, p := range paths {
		switch p {
		case "*":
			b.Title, b.Author, b.Read = in.GetTitle(), in.GetAuthor(), in.GetRead()
		case "title":
			b.Title = in.GetTitle()
		case "author":
			b.Author = in.GetAuthor()
		case "read":
			b.Read = in.GetRead()
		default:
			return nil, invalid("update_mask", fmt.Sprintf("%q cannot be updated.", p))
		}
	}
	if b.Title == "" {
		return nil, invalid("title", "This field may not be blank.")
	}
	shelf, id, _ := parseBook(b.Name)
	if _, err := tx.ExecContext(ctx, `UPDATE books SET title = ?, author = ?, read = ? WHERE shelf_id = ? AND book_id = ?`,
		b.Title, b.Author, b.Read, shelf, id); err != nil {
		return nil, internal(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, internal(err)
	}
	return b, nil
}

func (s *service) DeleteBook(ctx context.Context, req *libraryv1.DeleteBookRequest) (*emptypb.Empty, error) {
	shelf, id, ok := parseBook(req.GetName())
	if !ok {
		return nil, notFound(req.GetName())
	}
	res, err := s.store.db.ExecContext(ctx, `DELETE FROM books WHERE shelf_id = ? AND book_id = ?`, shelf, id)
	if err != nil {
		return nil, internal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFound(req.GetName())
	}
	return &emptypb.Empty{}, nil
}

// MoveBook moves a book to another shelf, keeping its id; the book's name changes.
func (s *service) MoveBook(ctx context.Context, req *libraryv1.MoveBookRequest) (*libraryv1.Book, error) {
	to, ok := parseShelf(req.GetOtherShelfName())
	if !ok {
		return nil, invalid("other_shelf_name", "Must be a shelf name such as shelves/1.")
	}
	tx, err := s.store.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, internal(err)
	}
	defer tx.Rollback()
	b, err := s.getBook(ctx, tx, req.GetName())
	if err != nil {
		return nil, err
	}
	if ok, err := s.shelfExists(ctx, tx, to); err != nil {
		return nil, internal(err)
	} else if !ok {
		return nil, notFound(req.GetOtherShelfName())
	}
	from, id, _ := parseBook(b.Name)
	if _, err := tx.ExecContext(ctx, `UPDATE books SET shelf_id = ? WHERE shelf_id = ? AND book_id = ?`, to, from, id); err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return nil, status.Errorf(codes.AlreadyExists, "%s/books/%s already exists", req.GetOtherShelfName(), id)
		}
		return nil, internal(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, internal(err)
	}
	b.Name = shelfName(to) + "/books/" + id
	return b, nil
}
