package polls

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsbridge/wsbridge/pubsub"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// choiceFields are the writable fields of a Choice.
var choiceFields = []string{"question_id", "choice_text", "votes"}

const choiceCols = "id, question_id, choice_text, votes"

func scanChoice(row scanner) (*pollsv1.Choice, error) {
	c := new(pollsv1.Choice)
	return c, row.Scan(&c.Id, &c.QuestionId, &c.ChoiceText, &c.Votes)
}

func getChoice(ctx context.Context, q querier, pk int64) (*pollsv1.Choice, error) {
	return one(scanChoice(q.QueryRowContext(ctx, "SELECT "+choiceCols+" FROM choices WHERE id = ?", pk)))
}

// validateChoice checks the given fields of c; the question must exist, so
// it runs in the transaction that writes c.
func validateChoice(ctx context.Context, tx *sql.Tx, c *pollsv1.Choice, fields []string) error {
	var v violations
	if slices.Contains(fields, "question_id") {
		switch _, err := getQuestion(ctx, tx, c.GetQuestionId()); {
		case c.GetQuestionId() == 0:
			v.add("question_id", msgRequired)
		case status.Code(err) == codes.NotFound:
			v.add("question_id", fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", c.GetQuestionId()))
		case err != nil:
			return err
		}
	}
	if slices.Contains(fields, "choice_text") {
		v.text("choice_text", c.GetChoiceText())
	}
	return v.err("invalid choice")
}

// ChoiceService implements pollsv1.ChoiceServiceServer on a Store.
type ChoiceService struct {
	pollsv1.UnimplementedChoiceServiceServer
	st *Store
}

// NewChoiceService returns the choice service of st.
func NewChoiceService(st *Store) *ChoiceService { return &ChoiceService{st: st} }

func (s *ChoiceService) Create(ctx context.Context, req *pollsv1.CreateChoiceRequest) (*pollsv1.Choice, error) {
	d := req.GetData()
	var c *pollsv1.Choice
	err := s.st.write(ctx, func(tx *sql.Tx) (_ []event, err error) {
		if err := validateChoice(ctx, tx, d, choiceFields); err != nil {
			return nil, err
		}
		c, err = scanChoice(tx.QueryRowContext(ctx,
			"INSERT INTO choices (question_id, choice_text, votes) VALUES (?, ?, ?) RETURNING "+choiceCols,
			d.GetQuestionId(), d.GetChoiceText(), d.GetVotes()))
		return []event{{ChoiceTopic, pubsub.ActionCreate, c.GetId(), c}}, err
	})
	return orNil(c, err)
}

func (s *ChoiceService) Retrieve(ctx context.Context, req *pollsv1.RetrieveChoiceRequest) (*pollsv1.Choice, error) {
	var c *pollsv1.Choice
	err := s.st.read(ctx, func(tx *sql.Tx) (err error) {
		c, err = getChoice(ctx, tx, req.GetPk())
		return err
	})
	return orNil(c, err)
}

func (s *ChoiceService) Update(ctx context.Context, req *pollsv1.UpdateChoiceRequest) (*pollsv1.Choice, error) {
	return s.save(ctx, req.GetPk(), req.GetData(), choiceFields)
}

func (s *ChoiceService) Patch(ctx context.Context, req *pollsv1.PatchChoiceRequest) (*pollsv1.Choice, error) {
	fields, err := maskFields(req.GetUpdateMask(), choiceFields)
	if err != nil {
		return nil, err
	}
	return s.save(ctx, req.GetPk(), req.GetData(), fields)
}

// save sets the given fields of choice pk from d.
func (s *ChoiceService) save(ctx context.Context, pk int64, d *pollsv1.Choice, fields []string) (*pollsv1.Choice, error) {
	var c *pollsv1.Choice
	err := s.st.write(ctx, func(tx *sql.Tx) (_ []event, err error) {
		if c, err = getChoice(ctx, tx, pk); err != nil {
			return nil, err
		}
		apply(c, d, fields)
		if err := validateChoice(ctx, tx, c, fields); err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, "UPDATE choices SET question_id = ?, choice_text = ?, votes = ? WHERE id = ?",
			c.GetQuestionId(), c.GetChoiceText(), c.GetVotes(), pk)
		return []event{{ChoiceTopic, pubsub.ActionUpdate, pk, c}}, err
	})
	return orNil(c, err)
}

func (s *ChoiceService) List(ctx context.Context, req *pollsv1.ListChoicesRequest) (*pollsv1.ListChoicesResponse, error) {
	limit, offset, err := paging(req.GetPage(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	where, args := "", []any{}
	if req.QuestionId != nil {
		where, args = " WHERE question_id = ?", append(args, req.GetQuestionId())
	}
	resp := new(pollsv1.ListChoicesResponse)
	err = s.st.read(ctx, func(tx *sql.Tx) (err error) {
		if err = tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM choices"+where, args...).Scan(&resp.Count); err != nil {
			return err
		}
		resp.Choices, err = all(ctx, tx, scanChoice,
			"SELECT "+choiceCols+" FROM choices"+where+" ORDER BY id LIMIT ? OFFSET ?", append(args, limit, offset)...)
		return err
	})
	return orNil(resp, err)
}

func (s *ChoiceService) Delete(ctx context.Context, req *pollsv1.DeleteChoiceRequest) (*pollsv1.DeleteChoiceResponse, error) {
	err := s.st.write(ctx, func(tx *sql.Tx) ([]event, error) {
		c, err := getChoice(ctx, tx, req.GetPk())
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM choices WHERE id = ?", c.GetId())
		return []event{{ChoiceTopic, pubsub.ActionDelete, c.GetId(), c}}, err
	})
	return orNil(&pollsv1.DeleteChoiceResponse{}, err)
}

// Vote adds one vote in a single UPDATE, so concurrent votes all count.
func (s *ChoiceService) Vote(ctx context.Context, req *pollsv1.VoteChoiceRequest) (*pollsv1.Choice, error) {
	var c *pollsv1.Choice
	err := s.st.write(ctx, func(tx *sql.Tx) (_ []event, err error) {
		c, err = one(scanChoice(tx.QueryRowContext(ctx,
			"UPDATE choices SET votes = votes + 1 WHERE id = ? RETURNING "+choiceCols, req.GetPk())))
		return []event{{ChoiceTopic, pubsub.ActionUpdate, c.GetId(), c}}, err
	})
	return orNil(c, err)
}

func (s *ChoiceService) Subscribe(req *pollsv1.SubscribeChoicesRequest, stream grpc.ServerStreamingServer[pollsv1.ChoiceEvent]) error {
	f, err := filter(req.Pk, req.GetActions())
	if err != nil {
		return err
	}
	// Serve replays after req.Since and fills each event's offset.
	return pubsub.Serve(stream, s.st.b, ChoiceTopic, f, req.GetSince(), func(ev pubsub.Event) (*pollsv1.ChoiceEvent, error) {
		pk, c, err := decode[pollsv1.Choice](ev)
		if err != nil {
			return nil, err
		}
		return &pollsv1.ChoiceEvent{Action: ev.Action, Pk: pk, Data: c}, nil
	})
}
