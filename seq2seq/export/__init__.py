"""Export to ONNX (``seq2seq export``) and decoding an exported directory through
onnxruntime: :mod:`~seq2seq.export.graphs` (what is traced), :mod:`~seq2seq.export.exporter`
(writing a directory; it loads runs through :mod:`seq2seq.api`), :mod:`~seq2seq.export.manifest`
(its checksums) and :mod:`~seq2seq.export.runtime` (the search's model interface over the
graphs, which :meth:`seq2seq.api.Seq2Seq.load` uses).  Nothing is imported here, so that
loading an exported directory does not import the exporter."""
