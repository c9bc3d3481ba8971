"""Export to ONNX (``seq2seq export``) and decoding an exported directory through
onnxruntime: :mod:`~seq2seq.export.graphs` (what is traced), :mod:`~seq2seq.export.exporter`
(writing a directory), :mod:`~seq2seq.export.manifest` (its checksums) and
:mod:`~seq2seq.export.runtime` (the search's model interface over the graphs)."""

from seq2seq.export.exporter import export_onnx
from seq2seq.export.manifest import is_export, read_manifest

__all__ = ["export_onnx", "is_export", "read_manifest"]
