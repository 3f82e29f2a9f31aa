// Package onnxpb holds the Go bindings of the ONNX protobuf schema
// (ModelProto, GraphProto, NodeProto, TensorProto, …) that netssm writes its
// graphs in. It owns nothing else: graphs are built by package graph, and run
// by package ort.
//
// onnx.proto is copied unchanged (licence header included) from ONNX 1.12.0,
// as shipped by Debian's python3-onnx package; it describes IR version 8,
// the version netssm emits. onnx.pb.go is generated from it by protoc 3.21.12
// and protoc-gen-go v1.36.12 with the command below; do not edit it by hand.
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/netssm/netssm/onnxpb onnx.proto
