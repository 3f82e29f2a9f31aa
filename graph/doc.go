// Package graph builds ONNX graphs in Go and differentiates them: it is the
// engine under netssm's Mamba-2 training and inference graphs.
//
// It owns tensor types and static shapes, shape inference and broadcasting,
// the ops (one file per family: ops_elementwise.go, ops_matmul.go,
// ops_shape.go, ops_reduce.go, ops_nn.go), reverse-mode autodiff (autodiff.go:
// one vector-Jacobian rule per op type in one registry, broadcasting undone in
// one helper) and serialisation to an ONNX ModelProto, opset 17, IR version 8
// (export.go). It does not run graphs (package ort does), and it knows nothing
// of models, optimizers or checkpoints (the packages above it do).
//
// # Building a graph
//
//	g := graph.New("mlp", graph.WithFloat(graph.Float64)) // Float32 by default
//	x := g.Input("x", g.Float(), 8, 4)                      // batch 8, 4 features
//	exit := g.Scope("layers.0")
//	w := g.Param("weight", 4, 16)                           // "layers.0.weight"
//	b := g.Param("bias", 16)
//	exit()
//	h := graph.Relu(x.MatMul(w).Add(b))                     // (8, 16); b broadcasts
//	loss := graph.ReduceMean(graph.Square(h))               // scalar
//	grads, err := graph.Gradients(loss, g.Params())         // d loss / d w, d loss / d b
//	g.Output("loss", graph.Reshape(loss, 1))                // see "Running the models"
//	g.Output("grad.weight", grads[0])
//	model, err := g.Serialize()                             // bytes for ort.NewSession
//
// Every tensor has a dtype (Float32, Float64, Int64, Bool) and a static Shape
// known when it is created; ops check them and infer the result's. Binary
// ops broadcast numpy-style and need equal dtypes: use ScalarLike(x, v), or
// the methods x.AddScalar(v) and x.MulScalar(v), for constants. Constants
// (Const, Scalar, Full, Zeros, Ones, Arange) are stored once per distinct
// value. The float type of a graph (WithFloat) is what Param and Scalar use,
// so one model function builds in Float64 for exact tests and in Float32 for
// training.
//
// Names: Input, Param and Output take names under the current scope
// (Graph.Scope), joined by dots, so "layers.3.mixer.in_proj.weight" says where
// a parameter lives. Parameters become graph inputs (training feeds them and
// gets new values out) unless Build is given their values with Initializers
// (exported inference graphs). Nodes are named scope/Op_N.
//
// # Gradients
//
// Gradients(loss, wrt) adds the backward pass to the same graph and returns
// d loss / d x for each x of wrt, which may be any float tensors (parameters,
// inputs, intermediate values). StopGradient(x) blocks the flow. Asking for
// a gradient through an op without a rule (GradientOps lists the ops that have
// one) is a build error naming the op and node.
//
// # Running the models
//
// The models are standard ONNX, for any execution provider; they are tested
// on ONNX Runtime's CPU provider in float64 (every op) and float32.
// Where ONNX Runtime lacks a float64 kernel, the op is composed of others
// (Softplus, OneHot) or written so that its float32-only fusion does not
// apply (Silu). Two habits help: the Go binding (onnxruntime_go) carries no
// rank-0 tensors, so feed and fetch scalars with shape (1), e.g.
// g.Output("loss", Reshape(loss, 1)); and write x·σ(x) as Silu(x).
// WithValueInfo records every inferred shape in the model, for viewers and
// for onnx.checker's full check.
//
// # Errors
//
// Building panics internally, with messages that name the op and the shapes
// involved, and never across the package boundary: each exported function
// recovers, records the first error on the graph and returns placeholder
// tensors from then on, so model code needs no error checks per op.
// Gradients, Build and Serialize return the recorded error (Graph.Err reports
// it at any time). Only a nil tensor given where a tensor is required panics,
// as a nil pointer would: there is no graph to record the error on. With NETSSM_DUMP_ONNX=DIR set, a failing Build writes what
// it has of the model to DIR/<graph>.build-failed.onnx, with the error in a
// .txt beside it, for inspection with Netron or onnx.checker.
package graph
