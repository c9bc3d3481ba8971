"""Data: TSV reading, tokenizers, vocabularies, batching, dataset recipes."""
