"""The commands that measure: `bench` (this machine's speed, a collection's scale curve, a
watcher's freshness), `eval` (retrieval quality on labelled images) and `sample` (the labelled
and unlabelled sets they measure on)."""

from __future__ import annotations

import argparse

from imgsearch.discover import DiscoveryError, discover
from imgsearch.settings import get_settings as settings


def bench(arguments: argparse.Namespace) -> int:
    if arguments.watch:
        from benchmarks.bench import run_watch

        run_watch(arguments.quick, arguments.smoke, arguments.workdir, arguments.json_file)
        return 0
    if arguments.scale:
        from benchmarks.bench import run_scale

        run_scale(arguments.scale, arguments.backends, arguments.workdir, arguments.json_file, arguments.plot)
        return 0
    from benchmarks.bench import run

    run(arguments.quick, arguments.count, arguments.workdir, arguments.json_file, arguments.smoke)
    return 0


def evaluate(arguments: argparse.Namespace) -> int:
    import dataclasses
    import json
    import random

    from imgsearch import resources
    from imgsearch.evaluation import FeatureMaps, render
    from imgsearch.evaluation import evaluate as measure
    from imgsearch.settings import PRECISIONS
    from imgsearch.weights import find_weights

    current = settings()
    images = [image for image in discover(arguments.path).images if image.labels]
    if len(images) < 2:
        raise DiscoveryError(f"need at least 2 labelled images under {arguments.path}")
    if arguments.limit and len(images) > arguments.limit:
        images = sorted(random.Random(0).sample(images, arguments.limit), key=lambda image: image.path)
    weights = find_weights(current.cache_dir, current.weights)
    maps = FeatureMaps(weights, current.batch_size)
    chosen = PRECISIONS if arguments.precisions is None else arguments.precisions
    encoders = {precision: resources.encoder(weights, current.pooling, current.batch_size, precision).embed  # type: ignore[arg-type]
                for precision in chosen}  # fp32 first: the others are compared with it
    result = measure(images, maps, queries=arguments.queries, encoders=encoders, pooling=current.pooling,
                     scales=arguments.scales)
    print(f"{result.images} images, {len({l for i in images for l in i.labels})} labels\n")
    print(render(result))
    if arguments.json_file:
        arguments.json_file.write_text(json.dumps(dataclasses.asdict(result), indent=2))
    return 0


def class_names() -> list[str] | None:
    from imgsearch.weights import WeightsError, imagenet_labels

    try:
        return imagenet_labels(settings().cache_dir)
    except WeightsError:
        return None


def sample(arguments: argparse.Namespace) -> int:
    from imgsearch.samples import KINDS, make_kinds_sample, make_voc_sample

    if arguments.fashion:
        from imgsearch.fashion import CLASSES, make_fashion_sample

        make_fashion_sample(arguments.dest, arguments.count, settings().cache_dir, seed=arguments.seed)
        print(f"wrote {arguments.count} Fashion-MNIST photos of {len(CLASSES)} kinds of clothing, "
              f"a folder per kind, under {arguments.dest}")
        return 0
    if arguments.kinds:
        year = make_kinds_sample(arguments.dest, arguments.count, settings().cache_dir, seed=arguments.seed)
        print(f"wrote {arguments.count} images of {len(KINDS)} kinds of object in PASCAL VOC layout under {year}")
        return 0
    year = make_voc_sample(arguments.dest, arguments.count, settings().cache_dir,
                           class_names(), seed=arguments.seed)
    print(f"wrote {arguments.count} photos in PASCAL VOC layout under {year}")
    return 0
