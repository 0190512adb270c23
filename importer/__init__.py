"""Model import: what users have, as the one-graph ONNX model the server runs (python -m importer)."""
