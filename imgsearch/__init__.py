"""imgsearch's domain code: settings, decoding, the encoder and the two stores.

It imports neither Prefect nor Starlette; `tasks/` wraps it for flows and
`search_app/` serves it over HTTP.
"""

from imgsearch import runtime

# Before numpy is first imported anywhere (see imgsearch/runtime.py).
runtime.configure()

__version__ = "0.1.0"
