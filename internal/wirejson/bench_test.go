package wirejson_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/wsbridge/wsbridge/internal/wirejson"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// The example's messages: a create request as a client sends it, and replies.
var (
	createJSON = []byte(`{"data":{"question_text":"What's your favourite colour?","published":true}}`)
	createMD   = (&pollsv1.CreateQuestionRequest{}).ProtoReflect().Descriptor()
	questionMD = (&pollsv1.Question{}).ProtoReflect().Descriptor()
	choicesMD  = (&pollsv1.ListChoicesResponse{}).ProtoReflect().Descriptor()
)

func questionWire() []byte {
	b, _ := proto.Marshal(&pollsv1.Question{Id: 12345, QuestionText: "What's your favourite colour?", Published: true})
	return b
}

func choicesWire() []byte {
	r := &pollsv1.ListChoicesResponse{Count: 10}
	for i := range 10 {
		r.Choices = append(r.Choices, &pollsv1.Choice{Id: int64(i + 1), QuestionId: 12345, ChoiceText: fmt.Sprintf("Choice number %d", i), Votes: int64(i * 7)})
	}
	b, _ := proto.Marshal(r)
	return b
}

func BenchmarkUnmarshal(b *testing.B) {
	b.Run("CreateQuestionRequest/wirejson", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = (wirejson.UnmarshalOptions{}).Append(buf[:0], createMD, createJSON); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CreateQuestionRequest/protojson+dynamicpb", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := dynamicpb.NewMessage(createMD)
			if err := protojson.Unmarshal(createJSON, m); err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMarshal(b *testing.B) {
	for _, c := range []struct {
		name string
		md   protoreflect.MessageDescriptor
		wire []byte
	}{
		{"Question", questionMD, questionWire()},
		{"ListChoicesResponse10", choicesMD, choicesWire()},
	} {
		b.Run(c.name+"/wirejson", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = (wirejson.MarshalOptions{}).Append(buf[:0], c.md, c.wire); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/protojson+dynamicpb", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				m := dynamicpb.NewMessage(c.md)
				if err := proto.Unmarshal(c.wire, m); err != nil {
					b.Fatal(err)
				}
				var err error
				if buf, err = marshalRef.MarshalAppend(buf[:0], m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
