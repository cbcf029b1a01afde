"""``cnnlab serve``: the zoo, any model's anatomy, training runs (live), an in-browser
playground and comparisons, as a local web app (Starlette + uvicorn).

    >>> from cnnlab.web import create_app
    >>> app = create_app("runs")            # an ASGI app; `cnnlab serve --runs runs` runs it

The page code is ``static/app.js``; its libraries (onnxruntime-web, uPlot) come from
npm (``frontend/package-lock.json``) and are copied to ``static/vendor`` by ``make static``.
"""
from cnnlab.web.app import MAX_BODY_BYTES, STATIC_DIR, create_app

__all__ = ["create_app", "STATIC_DIR", "MAX_BODY_BYTES"]
