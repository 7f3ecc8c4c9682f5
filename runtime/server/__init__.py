"""HTTP server: OpenAI-compatible embeddings, search and index writes over one bundle."""
