package wirejson

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Codec is a gRPC codec that sends and receives wire bytes as they are: a request may be a
// []byte or a mem.BufferSlice, a reply may be read into a *[]byte or a *mem.BufferSlice
// (which the caller then owns and must Free). Any other value goes through gRPC's proto
// codec. Its name is "proto", so the call's content type stays application/grpc+proto and
// servers see an ordinary call. Use it per call: grpc.ForceCodecV2(wirejson.Codec{}).
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Name is "proto": the bytes are protobuf.
func (Codec) Name() string { return proto.Name }

// Marshal sends []byte and mem.BufferSlice as they are.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch b := v.(type) {
	case []byte:
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	case mem.BufferSlice:
		for _, buf := range b {
			buf.Ref() // gRPC frees what it sends; the caller keeps its own reference
		}
		return b, nil
	}
	return encoding.GetCodecV2(proto.Name).Marshal(v)
}

// Unmarshal reads into *[]byte (a copy) or *mem.BufferSlice (the received buffers).
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch p := v.(type) {
	case *[]byte:
		*p = data.Materialize()
		return nil
	case *mem.BufferSlice:
		data.Ref()
		*p = data
		return nil
	}
	return encoding.GetCodecV2(proto.Name).Unmarshal(data, v)
}
