"""The handbook Q&A engine: corpus, segmentation, the lexical index, the BERT backend."""
