"""The Modelyard serving service: Open Inference Protocol over gRPC and REST for ONNX models of approved digests."""
