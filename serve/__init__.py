"""The screening and review service (FastAPI).

`create_app(settings)` in `serve.main` builds the app; `jingwang serve` runs it with uvicorn.
Platforms submit posts to ``POST /v1/screen``; reviewers work the queue under ``/v1/review``
or in the web console at ``/console``; admins manage keys and tenant lexicons.
"""
