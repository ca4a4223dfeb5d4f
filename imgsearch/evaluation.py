"""Retrieval quality: leave-one-out ranking metrics and near-duplicate recall.

One forward pass per image to the last feature map (7x7x2048); every pooling
compared (avg, max, GeM p=3) is computed from the same maps, so the choice of
pooling is measured on identical inputs, each also after PCA-whitening learned
on the same images. Relevant = shares a label.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from imgsearch import runtime
from imgsearch.decode import INPUT_SIZE, decode_image
from imgsearch.discover import FoundImage
from imgsearch.encoder import build_keras_resnet50
from imgsearch.expansion import augment_database, expand_queries
from imgsearch.multiscale import describe, size_of
from imgsearch.pooling import POOLINGS, pool

# PCA-whitening (Jégou and Chum 2012; Radenović et al.'s retrieval pipelines): centre, rotate onto
# the principal axes, divide each by its spread, keep the strongest, L2-normalise. It is learned
# here on the very collection that is searched, as a user would learn it on their own index.
WHITEN_DIMS = 512
WHITENED = "+pcaw"  # suffix of a pooling measured after whitening: "avg+pcaw"


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, k): principal axes scaled by 1 / their standard deviation

    def __call__(self, features: np.ndarray) -> np.ndarray:
        whitened = (features - self.mean) @ self.projection
        unit: np.ndarray = whitened / np.maximum(np.linalg.norm(whitened, axis=1, keepdims=True), 1e-12)
        return unit


def learn_whitening(features: np.ndarray, dims: int = WHITEN_DIMS) -> Whitening:
    """PCA-whitening of `features` (N, D), keeping at most `dims` axes and never one of
    (numerically) no variance, whose division would only amplify noise."""
    data = np.asarray(features, dtype=np.float64)
    mean = data.mean(axis=0)
    _, singular, axes = np.linalg.svd(data - mean, full_matrices=False)
    spread = singular / np.sqrt(max(len(data) - 1, 1))
    kept = int(min(dims, np.sum(spread > spread[0] * 1e-6)))
    projection = axes[:kept].T / spread[:kept]
    return Whitening(mean.astype(np.float32), projection.astype(np.float32))


class FeatureMaps:
    """ResNet50 without pooling: (N, S, S, 3) uint8 -> (N, ⌈S/32⌉, ⌈S/32⌉, 2048) float32; 7x7
    at the system's 224."""

    def __init__(self, weights: Path, batch_size: int = 32) -> None:
        tf = runtime.tensorflow()
        keras = runtime.keras()

        self.model = build_keras_resnet50(weights, "gem", input_size=None)  # GeM pools outside: the maps
        preprocess = keras.applications.resnet50.preprocess_input
        self.batch_size = batch_size
        self._forward = tf.function(
            lambda pixels: self.model(preprocess(tf.cast(pixels, tf.float32)), training=False),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
        )

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        parts = [self._forward(pixels[i : i + self.batch_size]).numpy()
                 for i in range(0, len(pixels), self.batch_size)]
        return np.concatenate(parts)


def ranking_metrics(features: np.ndarray, labels: Sequence[frozenset[str]]) -> dict[str, float]:
    """Leave-one-out: each image queries all others. P@1, P@10, mAP@10, full mAP."""
    return averaged(per_query_metrics(features, labels))


def averaged(per_query: dict[str, np.ndarray]) -> dict[str, float]:
    return {"queries": len(per_query["mAP"]), **{name: float(np.mean(values)) for name, values in per_query.items()}}


def per_query_metrics(features: np.ndarray, labels: Sequence[frozenset[str]],
                      queries: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each query's P@1, P@10, AP@10 (under "mAP@10") and full AP (under "mAP"), in query order;
    queries with no relevant image are left out (they have no defined precision). Query i is
    image i, searched as `queries[i]` (its own features unless given) among all the others."""
    similarity = (features if queries is None else queries) @ features.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1)[:, :-1]  # drop self, ranked last
    vocabulary = sorted(set().union(*labels))
    onehot = np.zeros((len(labels), len(vocabulary)), dtype=np.float32)
    for row, names in enumerate(labels):
        onehot[row, [vocabulary.index(name) for name in names]] = 1.0
    shares = (onehot @ onehot.T) > 0
    relevance = np.take_along_axis(shares, order, axis=1)
    p1, p10, ap10, ap = [], [], [], []
    for relevant in relevance:
        total = int(relevant.sum())
        if total == 0:
            continue
        hits = np.cumsum(relevant)
        ranks = np.arange(1, len(relevant) + 1)
        precision = hits / ranks
        p1.append(float(relevant[0]))
        p10.append(float(relevant[:10].mean()))
        ap10.append(float((precision[:10] * relevant[:10]).sum() / min(10, total)))
        ap.append(float((precision * relevant).sum() / total))
    return {"P@1": np.array(p1), "P@10": np.array(p10), "mAP@10": np.array(ap10), "mAP": np.array(ap)}


def lead(better: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """The mean of per-query differences and its standard error. Both sides ranked the same
    queries, so the pairing removes what the queries share (how hard each one is), and a lead
    of a few thousandths can still be told from noise."""
    difference = better - other
    if len(difference) < 2:
        return float(np.mean(difference)), float("nan")
    return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference)))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def edits(rng: random.Random) -> dict[str, Callable[[Image.Image], Image.Image]]:
    """The near-duplicate edits a user's copy of a photo typically went through."""

    def crop(image: Image.Image) -> Image.Image:
        w, h = image.size
        keep = rng.uniform(0.7, 0.85)
        left, top = rng.randint(0, int(w * (1 - keep))), rng.randint(0, int(h * (1 - keep)))
        return image.crop((left, top, left + int(w * keep), top + int(h * keep)))

    def jitter(image: Image.Image) -> Image.Image:
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.75, 1.25))
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.75, 1.25))
        return ImageEnhance.Color(image).enhance(rng.uniform(0.7, 1.3))

    return {
        "crop": crop,
        "resize": lambda image: image.resize((image.width // 3, image.height // 3), Image.Resampling.BILINEAR),
        "jpeg_q30": lambda image: _jpeg(image, 30),
        "flip": ImageOps.mirror,
        "colour_jitter": jitter,
        "rotate_10": lambda image: image.rotate(10, resample=Image.Resampling.BILINEAR, expand=False),
    }


def pixels_of(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")  # lossless hand-over to the same decoder the system uses
    return decode_image(buffer.getvalue(), size).pixels


# What a PRECISION other than fp32 must keep to be a default: its top-10 agrees with fp32's
# at least this much, and its label retrieval (mAP) is within this of fp32's.
AGREEMENT_BAR = 0.95
MAP_TOLERANCE = 0.01


# αQE and DBA (expansion.py) are measured with these neighbours and powers.
EXPANSION_KS = (1, 2, 5, 10)
EXPANSION_ALPHAS = (1.0, 3.0)


@dataclass
class Evaluation:
    images: int
    ranking: dict[str, dict[str, float]]  # pooling -> metrics
    near_duplicates: dict[str, dict[str, dict[str, float]]]  # pooling -> edit -> recall@1/@10
    best: str  # the pooling that measured best: what POOLING should be
    precisions: dict[str, dict[str, float]] = field(default_factory=dict)  # PRECISION -> metrics
    best_overall: str = ""  # the best of every variant, whitened ones included
    # other pooling -> metric -> (best's lead over it, standard error), per query
    leads: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    # αQE / DBA variant of `expanded_pooling` -> its metrics and its lead over the plain vectors
    expansions: dict[str, dict[str, float]] = field(default_factory=dict)
    expanded_pooling: str = ""
    # multi-scale: input size -> seconds an image took there (decoding, network, pooling)
    scale_seconds: dict[int, float] = field(default_factory=dict)


Embed = Callable[[np.ndarray], np.ndarray]


def evaluate(images: Sequence[FoundImage], maps_of: Embed, queries: int = 100, seed: int = 0,
             encoders: dict[str, Embed] | None = None, pooling: str | None = None,
             scales: Sequence[float] = ()) -> Evaluation:
    """Measure every pooling on `images` (labelled); `queries` originals get each edit.
    `encoders` (PRECISION -> embed, fp32 first): each measured on the same pixels too. αQE and
    DBA are measured on `pooling` (what POOLING is; the best measured here if None), and with
    two or more `scales` (factors of 224) multi-scale descriptors too."""
    originals = [Image.open(image.path).convert("RGB") for image in images]
    pixels = np.stack([pixels_of(image) for image in originals])
    maps = maps_of(pixels)
    labels = [frozenset(image.labels) for image in images]
    rng = random.Random(seed)
    chosen = rng.sample(range(len(images)), min(queries, len(images)))
    edited_images = {name: [edit(originals[i]) for i in chosen] for name, edit in edits(rng).items()}
    edit_pixels = {name: np.stack([pixels_of(image) for image in edited]) for name, edited in edited_images.items()}
    edit_maps = {name: maps_of(edited) for name, edited in edit_pixels.items()}

    ranking: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, np.ndarray]] = {}
    near: dict[str, dict[str, dict[str, float]]] = {}
    pooled_by_kind: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for kind in POOLINGS:
        pooled = pool(maps, kind)
        edited_pooled = {name: pool(edited, kind) for name, edited in edit_maps.items()}
        pooled_by_kind[kind] = (pooled, edited_pooled)
        unchanged: Embed = lambda features: features
        for variant, transform in ((kind, unchanged), (kind + WHITENED, learn_whitening(pooled))):
            database = transform(pooled)
            per_query[variant] = per_query_metrics(database, labels)
            ranking[variant] = averaged(per_query[variant])
            near[variant] = {}
            for name, edited in edited_pooled.items():
                ranks = original_ranks(transform(edited) @ database.T, chosen)
                near[variant][name] = {"recall@1": float((ranks == 0).mean()),
                                       "recall@10": float((ranks < 10).mean())}
    # Rounded, so that float noise cannot decide; on a tie the earlier (the default, avg) wins.
    # The default is chosen among what POOLING can be; whitening is reported beside it.
    best = max(POOLINGS, key=lambda kind: _score(ranking, near, kind))
    best_overall = max(ranking, key=lambda variant: _score(ranking, near, variant))
    leads = {kind: {metric: lead(per_query[best][metric], per_query[kind][metric]) for metric in ("mAP@10", "mAP")}
             for kind in POOLINGS if kind != best}
    compared = compare_precisions(pixels, labels, edit_pixels, chosen, encoders) if encoders else {}
    expanded = pooling or best
    multi_scale, scale_seconds = None, {}
    if len(scales) > 1:
        database, seconds = describe(originals, maps_of, pixels_of, expanded, scales)
        multi_scale = (database, {name: describe(edited, maps_of, pixels_of, expanded, scales)[0]
                                  for name, edited in edited_images.items()})
        scale_seconds = {size: spent / len(originals) for size, spent in seconds.items()}
    expansions = measure_expansions(*pooled_by_kind[expanded], labels, chosen, multi_scale,
                                    "multi-scale " + ",".join(str(size_of(scale)) for scale in scales))
    return Evaluation(len(images), ranking, near, best, compared, best_overall, leads, expansions, expanded,
                      scale_seconds)


def measure_expansions(database: np.ndarray, edited: dict[str, np.ndarray], labels: Sequence[frozenset[str]],
                       chosen: Sequence[int], multi_scale: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
                       multi_scale_name: str = "multi-scale") -> dict[str, dict[str, float]]:
    """Label retrieval and near-duplicate recall@1 with αQE, DBA, and the best of each together,
    each against the plain vectors query by query (mAP@10 lead and its standard error); with
    `multi_scale` (the images' and the edited copies' multi-scale vectors) those alone and with
    the best αQE, the best DBA, and both. A leave-one-out query is searched as it was embedded (DBA changes what is
    stored, not what is asked); an edited copy's query is expanded among the stored vectors, its
    original included."""
    plain = per_query_metrics(database, labels)

    def measured(stored: np.ndarray, expand: Callable[[np.ndarray, bool], np.ndarray],
                 asked_images: np.ndarray = database, asked_copies: dict[str, np.ndarray] = edited) -> dict[str, float]:
        per_query = per_query_metrics(stored, labels, expand(asked_images, True))
        recalls = [float((original_ranks(expand(queries, False) @ stored.T, chosen) == 0).mean())
                   for queries in asked_copies.values()]
        mean, error = lead(per_query["mAP@10"], plain["mAP@10"])
        return {**averaged(per_query), "near_duplicate_recall@1": float(np.mean(recalls)),
                "mAP@10_lead": mean, "mAP@10_lead_error": error}

    def asked(queries: np.ndarray, leave_out_self: bool) -> np.ndarray:
        return queries

    plain_recall = float(np.mean([(original_ranks(queries @ database.T, chosen) == 0).mean()
                                  for queries in edited.values()]))

    def with_qe(stored: np.ndarray, k: int, alpha: float) -> Callable[[np.ndarray, bool], np.ndarray]:
        return lambda queries, leave_out_self: expand_queries(queries, stored, k, alpha, leave_out_self)

    grid = [(k, alpha) for k in EXPANSION_KS for alpha in EXPANSION_ALPHAS]
    qe = {(k, alpha): measured(database, with_qe(database, k, alpha)) for k, alpha in grid}
    dba: dict[tuple[int, float], dict[str, float]] = {}
    best_dba: tuple[int, float] | None = None
    augmented = database
    for k, alpha in grid:  # only the best augmented copy is kept, for the combination below
        candidate = augment_database(database, k, alpha)
        dba[(k, alpha)] = measured(candidate, asked)
        if best_dba is None or dba[(k, alpha)]["mAP@10"] > dba[best_dba]["mAP@10"]:
            best_dba, augmented = (k, alpha), candidate
    assert best_dba is not None
    best_qe = max(qe, key=lambda chosen_pair: qe[chosen_pair]["mAP@10"])
    figures = {"plain": {**averaged(plain), "near_duplicate_recall@1": plain_recall,
                         "mAP@10_lead": 0.0, "mAP@10_lead_error": 0.0},
               **{f"αQE k={k} α={alpha:g}": figures for (k, alpha), figures in qe.items()},
               **{f"DBA k={k} α={alpha:g}": figures for (k, alpha), figures in dba.items()},
               f"DBA k={best_dba[0]} α={best_dba[1]:g} + αQE k={best_qe[0]} α={best_qe[1]:g}":
                   measured(augmented, with_qe(augmented, *best_qe))}
    if multi_scale is not None:
        scaled, scaled_copies = multi_scale
        figures[multi_scale_name] = measured(scaled, asked, scaled, scaled_copies)
        figures[f"{multi_scale_name} + αQE k={best_qe[0]} α={best_qe[1]:g}"] = measured(
            scaled, with_qe(scaled, *best_qe), scaled, scaled_copies)
        scaled_augmented = augment_database(scaled, *best_dba)
        figures[f"{multi_scale_name} + DBA k={best_dba[0]} α={best_dba[1]:g}"] = measured(
            scaled_augmented, asked, scaled, scaled_copies)
        figures[f"{multi_scale_name} + DBA k={best_dba[0]} α={best_dba[1]:g} + αQE k={best_qe[0]} "
                f"α={best_qe[1]:g}"] = measured(scaled_augmented, with_qe(scaled_augmented, *best_qe), scaled,
                                                 scaled_copies)
    return figures


def original_ranks(scores: np.ndarray, chosen: Sequence[int]) -> np.ndarray:
    """For each edited copy (a row of `scores` against every image), how many images score
    above its original, `chosen[row]`: 0 means the original is found first."""
    originals = scores[np.arange(len(chosen)), chosen][:, None]
    ranks: np.ndarray = (scores > originals).sum(axis=1)
    return ranks


def _score(ranking: dict[str, dict[str, float]], near: dict[str, dict[str, dict[str, float]]],
           variant: str) -> tuple[float, float]:
    """Label mAP first, then mean near-duplicate recall@1, each to 3 decimals."""
    recall = float(np.mean([figures["recall@1"] for figures in near[variant].values()]))
    return round(ranking[variant]["mAP"], 3), round(recall, 3)


def compare_precisions(pixels: np.ndarray, labels: Sequence[frozenset[str]], edit_pixels: dict[str, np.ndarray],
                       chosen: list[int], encoders: dict[str, Embed]) -> dict[str, dict[str, float]]:
    """Label retrieval, near-duplicate recall@1 (mean over the edits) and, against the first
    encoder (fp32), the mean overlap of every image's leave-one-out top-10."""
    figures: dict[str, dict[str, float]] = {}
    reference: np.ndarray | None = None
    for name, embed in encoders.items():
        database = embed(pixels)
        metrics = ranking_metrics(database, labels)
        recalls = []
        for edited in edit_pixels.values():
            recalls.append(float((original_ranks(embed(edited) @ database.T, chosen) == 0).mean()))
        metrics["near_duplicate_recall@1"] = float(np.mean(recalls))
        nearest = leave_one_out_top10(database)
        reference = nearest if reference is None else reference
        metrics["top10_agreement"] = top10_agreement(reference, nearest)
        figures[name] = metrics
    baseline = next(iter(figures.values()))["mAP"]
    for metrics in figures.values():
        metrics["meets_bar"] = float(metrics["top10_agreement"] >= AGREEMENT_BAR
                                     and abs(metrics["mAP"] - baseline) <= MAP_TOLERANCE)
    return figures


def top10(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """The indices of each query's 10 nearest database rows (unit vectors), nearest first."""
    ranked: np.ndarray = np.argsort(-(queries @ database.T), axis=1)[:, :10]
    return ranked


def leave_one_out_top10(features: np.ndarray) -> np.ndarray:
    """Each row's 10 nearest other rows."""
    similarity = features @ features.T
    np.fill_diagonal(similarity, -np.inf)
    ranked: np.ndarray = np.argsort(-similarity, axis=1)[:, :10]
    return ranked


def top10_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """The mean share of each query's top-10 under `reference` that `other` also returns."""
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(reference, other, strict=True)]))


def render(result: Evaluation) -> str:
    lines = ["| pooling | P@1 | P@10 | mAP@10 | mAP |", "| --- | --- | --- | --- | --- |"]
    for kind, m in result.ranking.items():
        lines.append(f"| {kind} | {m['P@1']:.3f} | {m['P@10']:.3f} | {m['mAP@10']:.3f} | {m['mAP']:.3f} |")
    names = list(next(iter(result.near_duplicates.values())))
    lines += ["", "| pooling | " + " | ".join(f"{n} R@1 / R@10" for n in names) + " |",
              "| --- |" + " --- |" * len(names)]
    for kind, per_edit in result.near_duplicates.items():
        cells = [f"{per_edit[n]['recall@1']:.3f} / {per_edit[n]['recall@10']:.3f}" for n in names]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append(f"\nbest pooling on this set: {result.best}; best of all, PCA-whitened variants "
                 f"({WHITENED}, learned on this set) included: {result.best_overall}")
    if result.leads:
        lines.append(f"{result.best}'s lead per query (mean ± standard error): " + "; ".join(
            f"over {kind} " + ", ".join(f"{metric} {mean:+.4f} ± {error:.4f}" for metric, (mean, error) in by.items())
            for kind, by in result.leads.items()))
    if result.expansions:
        lines += ["", f"| {result.expanded_pooling}, expanded | P@10 | mAP@10 | lead over plain, mAP@10 (± s.e.) | mAP | "
                      "near-duplicate R@1 |", "| --- |" + " --- |" * 5]
        for name, m in result.expansions.items():
            lines.append(f"| {name} | {m['P@10']:.3f} | {m['mAP@10']:.3f} | {m['mAP@10_lead']:+.4f} ± "
                         f"{m['mAP@10_lead_error']:.4f} | {m['mAP']:.3f} | {m['near_duplicate_recall@1']:.3f} |")
    if result.scale_seconds:
        lines.append("multi-scale, seconds an image at each input size (decoding, network, pooling): " + ", ".join(
            f"{size}: {1000 * seconds:.1f} ms" for size, seconds in result.scale_seconds.items()))
    if result.precisions:
        header = ("| PRECISION | P@1 | mAP | near-duplicate R@1 | top-10 agreement with fp32 | "
                  f"agreement >= {AGREEMENT_BAR} and mAP within {MAP_TOLERANCE} |")
        lines += ["", header, "| --- |" + " --- |" * 5]
        for name, m in result.precisions.items():
            lines.append(f"| {name} | {m['P@1']:.3f} | {m['mAP']:.4f} | {m['near_duplicate_recall@1']:.3f} | "
                         f"{m['top10_agreement']:.3f} | {'yes' if m['meets_bar'] else 'no'} |")
    return "\n".join(lines)
