"""Chat model backends behind one interface (vLLM in-process, any OpenAI-compatible endpoint, transformers
in-process): a list of requests in, one result or one error reason per request out."""
