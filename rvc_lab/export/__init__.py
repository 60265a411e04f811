"""Exported models for hosts without Python: TorchScript and ONNX files of the RVC generator."""
