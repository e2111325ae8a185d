"""Feature stages computed at ingest: hashed n-grams, embeddings, clusters."""
