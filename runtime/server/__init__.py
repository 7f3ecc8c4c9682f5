"""HTTP server: OpenAI-compatible embeddings, search and index writes over one bundle.

Entry points: :func:`umr.runtime.server.app.create_app` (an app around any embedder and
index) and :func:`umr.runtime.server.launch.build_app` (from a bundle directory and an index
location, as ``umr serve`` does). One module per job: ``schemas`` (the API models),
``routes``, ``embedding`` + ``inputs`` + ``images`` + ``tokens`` (inputs to vectors),
``batching`` (dynamic micro-batching), ``index_service`` (searches, persisted writes),
``auth``, ``limits``, ``errors``, ``metrics``, ``config``. Importing this package imports
nothing heavy; FastAPI loads with ``app``.
"""
