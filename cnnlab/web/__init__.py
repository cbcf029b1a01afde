"""``cnnlab serve``: the zoo, any model's anatomy, training runs (live), an in-browser
playground and comparisons, as a local web app (Starlette + uvicorn).

    >>> from cnnlab.web import create_app
    >>> app = create_app("runs")            # an ASGI app; `cnnlab serve --runs runs` runs it

The page code is ``static/app.js``; its libraries (onnxruntime-web, uPlot) come from
npm (``frontend/package-lock.json``) and are copied to ``static/vendor`` by ``make static``.
"""
__all__ = ["create_app", "STATIC_DIR", "MAX_BODY_BYTES"]


def __getattr__(name):
    # loaded on first use, so that building the `cnnlab` parser needs neither starlette nor torch
    if name in __all__:
        from cnnlab.web import app

        return getattr(app, name)
    raise AttributeError(f"module 'cnnlab.web' has no attribute {name!r}")
