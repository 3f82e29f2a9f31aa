// Package train owns the training loop: the train-step graph (forward,
// backward, global-norm clipping and AdamW, one ONNX Runtime Run per optimiser
// step), the stream data order that carries recurrent states across windows of
// whole traces, validation against a unigram baseline, the learning-rate
// schedule, and the run directory (config.json, metrics.jsonl, checkpoints
// written atomically, best and latest). It does not define the model (package
// model) or read captures (packages capture, tokenizer, arrowdata).
package train
