package polls

import (
	"context"
	"database/sql"
	"slices"

	"google.golang.org/grpc"

	"github.com/wsbridge/wsbridge/pubsub"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// questionFields are the writable fields of a Question.
var questionFields = []string{"question_text", "published"}

const questionCols = "id, question_text, published"

func scanQuestion(row scanner) (*pollsv1.Question, error) {
	q := new(pollsv1.Question)
	return q, row.Scan(&q.Id, &q.QuestionText, &q.Published)
}

func getQuestion(ctx context.Context, q querier, pk int64) (*pollsv1.Question, error) {
	return one(scanQuestion(q.QueryRowContext(ctx, "SELECT "+questionCols+" FROM questions WHERE id = ?", pk)))
}

func validateQuestion(q *pollsv1.Question, fields []string) error {
	var v violations
	if slices.Contains(fields, "question_text") {
		v.text("question_text", q.GetQuestionText())
	}
	return v.err("invalid question")
}

// QuestionService implements pollsv1.QuestionServiceServer on a Store.
type QuestionService struct {
	pollsv1.UnimplementedQuestionServiceServer
	st *Store
}

// NewQuestionService returns the question service of st.
func NewQuestionService(st *Store) *QuestionService { return &QuestionService{st: st} }

func (s *QuestionService) Create(ctx context.Context, req *pollsv1.CreateQuestionRequest) (*pollsv1.Question, error) {
	d := req.GetData()
	if err := validateQuestion(d, questionFields); err != nil {
		return nil, err
	}
	var q *pollsv1.Question
	err := s.st.write(ctx, func(tx *sql.Tx) (_ []event, err error) {
		q, err = scanQuestion(tx.QueryRowContext(ctx,
			"INSERT INTO questions (question_text, published) VALUES (?, ?) RETURNING "+questionCols,
			d.GetQuestionText(), d.GetPublished()))
		return []event{{QuestionTopic, pubsub.ActionCreate, q.GetId(), q}}, err
	})
	return orNil(q, err)
}

func (s *QuestionService) Retrieve(ctx context.Context, req *pollsv1.RetrieveQuestionRequest) (*pollsv1.Question, error) {
	var q *pollsv1.Question
	err := s.st.read(ctx, func(tx *sql.Tx) (err error) {
		q, err = getQuestion(ctx, tx, req.GetPk())
		return err
	})
	return orNil(q, err)
}

func (s *QuestionService) Update(ctx context.Context, req *pollsv1.UpdateQuestionRequest) (*pollsv1.Question, error) {
	return s.save(ctx, req.GetPk(), req.GetData(), questionFields)
}

func (s *QuestionService) Patch(ctx context.Context, req *pollsv1.PatchQuestionRequest) (*pollsv1.Question, error) {
	fields, err := maskFields(req.GetUpdateMask(), questionFields)
	if err != nil {
		return nil, err
	}
	return s.save(ctx, req.GetPk(), req.GetData(), fields)
}

// save sets the given fields of question pk from d.
func (s *QuestionService) save(ctx context.Context, pk int64, d *pollsv1.Question, fields []string) (*pollsv1.Question, error) {
	var q *pollsv1.Question
	err := s.st.write(ctx, func(tx *sql.Tx) (_ []event, err error) {
		if q, err = getQuestion(ctx, tx, pk); err != nil {
			return nil, err
		}
		apply(q, d, fields)
		if err := validateQuestion(q, fields); err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, "UPDATE questions SET question_text = ?, published = ? WHERE id = ?",
			q.GetQuestionText(), q.GetPublished(), pk)
		return []event{{QuestionTopic, pubsub.ActionUpdate, pk, q}}, err
	})
	return orNil(q, err)
}

func (s *QuestionService) List(ctx context.Context, req *pollsv1.ListQuestionsRequest) (*pollsv1.ListQuestionsResponse, error) {
	limit, offset, err := paging(req.GetPage(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	resp := new(pollsv1.ListQuestionsResponse)
	err = s.st.read(ctx, func(tx *sql.Tx) (err error) {
		if err = tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM questions").Scan(&resp.Count); err != nil {
			return err
		}
		resp.Questions, err = all(ctx, tx, scanQuestion,
			"SELECT "+questionCols+" FROM questions ORDER BY id LIMIT ? OFFSET ?", limit, offset)
		return err
	})
	return orNil(resp, err)
}

// Delete deletes the question and its choices, publishing a delete event for
// each of them, the choices first as Django's cascade does.
func (s *QuestionService) Delete(ctx context.Context, req *pollsv1.DeleteQuestionRequest) (*pollsv1.DeleteQuestionResponse, error) {
	err := s.st.write(ctx, func(tx *sql.Tx) ([]event, error) {
		q, err := getQuestion(ctx, tx, req.GetPk())
		if err != nil {
			return nil, err
		}
		choices, err := all(ctx, tx, scanChoice,
			"SELECT "+choiceCols+" FROM choices WHERE question_id = ? ORDER BY id", q.GetId())
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM choices WHERE question_id = ?", q.GetId()); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM questions WHERE id = ?", q.GetId()); err != nil {
			return nil, err
		}
		var evs []event
		for _, c := range choices {
			evs = append(evs, event{ChoiceTopic, pubsub.ActionDelete, c.GetId(), c})
		}
		return append(evs, event{QuestionTopic, pubsub.ActionDelete, q.GetId(), q}), nil
	})
	if err != nil {
		return nil, err
	}
	return &pollsv1.DeleteQuestionResponse{}, nil
}

func (s *QuestionService) Publish(ctx context.Context, req *pollsv1.PublishQuestionRequest) (*pollsv1.Question, error) {
	var q *pollsv1.Question
	err := s.st.write(ctx, func(tx *sql.Tx) (_ []event, err error) {
		q, err = one(scanQuestion(tx.QueryRowContext(ctx,
			"UPDATE questions SET published = 1 WHERE id = ? RETURNING "+questionCols, req.GetPk())))
		return []event{{QuestionTopic, pubsub.ActionUpdate, q.GetId(), q}}, err
	})
	return orNil(q, err)
}

func (s *QuestionService) Report(ctx context.Context, _ *pollsv1.ReportQuestionsRequest) (*pollsv1.ReportQuestionsResponse, error) {
	resp := new(pollsv1.ReportQuestionsResponse)
	err := s.st.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(published), 0) FROM questions").
			Scan(&resp.Total, &resp.Published)
	})
	return orNil(resp, err)
}

func (s *QuestionService) Subscribe(req *pollsv1.SubscribeQuestionsRequest, stream grpc.ServerStreamingServer[pollsv1.QuestionEvent]) error {
	f, err := filter(req.Pk, req.GetActions())
	if err != nil {
		return err
	}
	// Serve replays after req.Since and fills each event's offset.
	return pubsub.Serve(stream, s.st.b, QuestionTopic, f, req.GetSince(), func(ev pubsub.Event) (*pollsv1.QuestionEvent, error) {
		pk, q, err := decode[pollsv1.Question](ev)
		if err != nil {
			return nil, err
		}
		return &pollsv1.QuestionEvent{Action: ev.Action, Pk: pk, Data: q}, nil
	})
}
