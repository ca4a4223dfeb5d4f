"""imgsearch's domain code: settings, decoding, the encoder and the two stores.

It imports neither Prefect nor Starlette; `tasks/` wraps it for flows and
`search_app/` serves it over HTTP.
"""

__version__ = "0.1.0"
