"""Measuring imgsearch: `bench.py` (what `imgsearch bench` runs), `load.py` with
`locustfile.py` (many clients against `imgsearch serve`). Not part of the product:
their extra dependencies come with `pip install imgsearch[bench]`."""
