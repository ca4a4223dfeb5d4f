"""imgsearch's domain code: settings, decoding, the encoder and the two stores.

It imports neither Prefect nor Starlette; `tasks/` wraps it for flows and
`search_app/` serves it over HTTP.
"""

import os

# numpy's OpenBLAS keeps worker threads spinning after each BLAS call; on 2
# cores they took a core from TensorFlow and slowed a search's forward pass
# from 52 to 89 ms (measured in `imgsearch serve`). imgsearch's numpy work is
# tiny; TensorFlow has its own thread pool. It must be set before numpy is
# first imported, which is why it lives here; a user's own value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
