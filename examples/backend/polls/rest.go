package polls

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// NewRESTHandler serves the services as REST/JSON (the routes of
// proto/polls/v1/polls_http.yaml). It calls them in-process, so a REST
// request is served, validated and published exactly like a gRPC one.
func NewRESTHandler(ctx context.Context, qs pollsv1.QuestionServiceServer, cs pollsv1.ChoiceServiceServer) (http.Handler, error) {
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		// Unknown keys are ignored, as Django REST framework ignores them.
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}))
	if err := pollsv1.RegisterQuestionServiceHandlerServer(ctx, mux, qs); err != nil {
		return nil, err
	}
	if err := pollsv1.RegisterChoiceServiceHandlerServer(ctx, mux, cs); err != nil {
		return nil, err
	}
	return mux, nil
}
