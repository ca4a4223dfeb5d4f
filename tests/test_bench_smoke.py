"""`imgsearch bench --smoke` and `imgsearch eval` produce their figures (no speed is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgsearch.samples import make_voc_sample
from imgsearch.settings import get_settings

IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
pytestmark = pytest.mark.usefixtures("weights", "photos")


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PREFECT_API", "MILVUS_", "MYSQL_", "DATABASE_URL", "DEFAULT_TABLE"))}


def numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return []


def test_bench_smoke_yields_every_figure(tmp_path: Path, prefect_api_url: str) -> None:
    # Its index runs report to the session's Prefect API rather than each starting a temporary one.
    result = subprocess.run([IMGSEARCH, "bench", "--smoke", "--workdir", str(tmp_path / "w"),
                             "--json", str(tmp_path / "bench.json")],
                            capture_output=True, text=True, env={**env(), "PREFECT_API_URL": prefect_api_url},
                            timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    for stage in ("a_model", "b_seed", "c_index", "d_rerun", "e_search", "f_milvus", "g_precision", "h_duplicates",
                  "i_end_to_end", "ratios"):
        assert stage in report and all(math.isfinite(n) and n >= 0 for n in numbers(report[stage])), stage
    assert report["c_index"]["indexed"] == 24 and report["d_rerun"]["embedded"] == 1
    # Each stage's wall and CPU seconds, the commands it waited for included ((c) is a process).
    spent = report["stage_seconds"]
    assert list(spent) == ["corpus", *"abcdefghi"] and all(s["wall"] > 0 and s["cpu"] > 0 for s in spent.values())
    assert spent["c"]["cpu"] > 1 and "seconds by stage, wall / CPU" in result.stdout
    assert report["e_search"]["c8"]["requests"] == 16
    # (i): fp32 indexed and searched in a data folder of its own beside the configured precision,
    # whose (c) and (e) are reused; Server-Timing's phases recorded, the default's gain over fp32 checked.
    configured = report["precision"]
    assert set(report["i_end_to_end"]) == {"fp32", configured}
    assert report["i_end_to_end"]["fp32"]["index"]["indexed"] == 24
    assert report["i_end_to_end"][configured]["index"] == report["c_index"]
    assert set(report["e_search"]["c1"]["phases_ms"]) == {"upload", "decode", "encode", "search"}
    assert report["i_targets"][configured]["index/fp32_index"] > 0
    assert 0 < report["e_search"]["c1"]["cores_busy"] <= (os.cpu_count() or 1) + 0.5
    assert f"(i) PRECISION={configured} end to end" in result.stdout
    scale = report["h_duplicates"]["at_scale"]
    assert scale["images"] == 2000 and scale["planted_found"] == scale["planted"] == scale["groups"] == 20
    assert "(h) duplicates, 2,000 images" in result.stdout
    assert "c/b (target >= 1.5)" in result.stdout
    # What decides int8's speed is recorded with the figures (a list, empty on plain AVX2).
    assert isinstance(report["cpu_int8"], list) and "int8 dot product:" in result.stdout


def test_eval_yields_ranking_and_near_duplicate_tables(tmp_path: Path) -> None:
    make_voc_sample(tmp_path / "voc", 24, get_settings().cache_dir, seed=4)
    result = subprocess.run([IMGSEARCH, "eval", str(tmp_path / "voc"), "--queries", "6",
                             "--json", str(tmp_path / "eval.json")],
                            capture_output=True, text=True, env=env(), timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "eval.json").read_text())
    poolings = {"avg", "max", "gem"}
    assert set(figures["ranking"]) == poolings | {f"{kind}+pcaw" for kind in poolings}
    assert figures["best"] in poolings and figures["best_overall"] in figures["ranking"]
    for metrics in figures["ranking"].values():
        # Only images that share a label with another one are queries (24 photos of 20 classes).
        assert 0 <= metrics["mAP"] <= 1 and 0 < metrics["queries"] <= 24
    assert set(figures["near_duplicates"]["avg"]) == {"crop", "resize", "jpeg_q30", "flip", "colour_jitter",
                                                      "rotate_10"}
    assert "| pooling | P@1 |" in result.stdout
    assert list(figures["precisions"]) == ["fp32", "bf16", "dynamic", "int8"]
    assert figures["precisions"]["fp32"]["top10_agreement"] == 1.0 and figures["precisions"]["fp32"]["meets_bar"]
    assert all(0.5 < m["top10_agreement"] <= 1 for m in figures["precisions"].values())
    assert "| PRECISION | P@1 | mAP |" in result.stdout
    # The best pooling's lead over each other one, per query, with its standard error.
    assert set(figures["leads"]) == poolings - {figures["best"]}
    assert all(set(by) == {"mAP@10", "mAP"} and by["mAP"][0] >= 0 for by in figures["leads"].values())
    assert f"{figures['best']}'s lead per query (mean ± standard error): over " in result.stdout
    # αQE and DBA on the configured pooling, each k and α, and the best of each together (issue 27).
    expansions = figures["expansions"]
    assert len(expansions) == 1 + 2 * 4 * 2 + 1 and expansions["plain"]["mAP@10_lead"] == 0
    assert "αQE k=2 α=3" in expansions and "DBA k=10 α=1" in expansions and " + αQE k=" in list(expansions)[-1]
    assert all(0 <= m["mAP@10"] <= 1 and 0 <= m["near_duplicate_recall@1"] <= 1 for m in expansions.values())
    assert figures["expanded_pooling"] == get_settings().pooling
    assert f"| {figures['expanded_pooling']}, expanded | P@10 |" in result.stdout


def test_eval_compares_only_the_precisions_asked_for(tmp_path: Path) -> None:
    make_voc_sample(tmp_path / "voc", 8, get_settings().cache_dir, seed=4)
    poolings_only = subprocess.run([IMGSEARCH, "eval", str(tmp_path / "voc"), "--queries", "2", "--precisions", "none",
                                    "--scales", "0.707,1,1.414", "--json", str(tmp_path / "eval.json")],
                                   capture_output=True, text=True, env=env(), timeout=600, check=False)
    assert poolings_only.returncode == 0, poolings_only.stderr[-3000:]
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures["precisions"] == {}
    assert "| pooling | P@1 |" in poolings_only.stdout and "PRECISION" not in poolings_only.stdout
    # Multi-scale descriptors (issue 27): the images at 158, 224 and 317 pixels, alone and with αQE.
    assert list(figures["scale_seconds"]) == ["158", "224", "317"] and all(
        0 < seconds < 60 for seconds in figures["scale_seconds"].values())
    scaled = figures["expansions"]["multi-scale 158,224,317"]
    assert 0 <= scaled["mAP@10"] <= 1 and 0 <= scaled["near_duplicate_recall@1"] <= 1
    assert any(name.startswith("multi-scale 158,224,317 + αQE k=") for name in figures["expansions"])
    combined = [name for name in figures["expansions"] if name.startswith("multi-scale 158,224,317 + DBA k=")]
    assert len(combined) == 2 and any("+ αQE k=" in name for name in combined), combined
    assert "multi-scale, seconds an image at each input size" in poolings_only.stdout
    one_scale = subprocess.run([IMGSEARCH, "eval", str(tmp_path / "voc"), "--scales", "1"],
                               capture_output=True, text=True, env=env(), timeout=600, check=False)
    assert one_scale.returncode == 2 and "--scales" in one_scale.stderr
    unknown = subprocess.run([IMGSEARCH, "eval", str(tmp_path / "voc"), "--precisions", "int8,int4"],
                             capture_output=True, text=True, env=env(), timeout=600, check=False)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[-1] == ("imgsearch eval: error: argument --precisions: unknown int4: "
                                               "use none or some of fp32, bf16, dynamic, int8")


def test_the_scale_stage_grows_one_collection_and_measures_each_size(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`imgsearch bench --scale` at toy sizes on Milvus Lite: every figure of each size, the table and the
    plot (the real sizes run in the bench, never here)."""
    from benchmarks import scale

    for name in ("MILVUS_URI", "DATABASE_URL", "MILVUS_HOST", "MYSQL_HOST", "DEFAULT_TABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(scale, "BLOCK", 700)  # rows made and read back in several blocks
    monkeypatch.setattr(scale, "QUERIES", 10)
    monkeypatch.setattr(scale, "REQUESTS", 5)
    report = scale.run([1000, 2000], ["lite"], tmp_path, real=40, say=lambda _: None)
    by_size = report["backends"]["lite"]
    assert list(by_size) == ["1000", "2000"]
    for size, figures in by_size.items():
        assert figures["images"] == int(size) and figures["insert"]["added"] == 1000
        assert figures["milvus"]["recall_at_10"] == 1.0, "FLAT is exact"
        assert figures["plan"]["to_index"] == int(size) // 100 and figures["plan"]["unchanged"] == int(size) * 99 // 100
        assert figures["http"]["p50_ms"] > 0 and figures["duplicates_seconds"] > 0 and figures["export_seconds"] > 0
        expanded = figures["http"]["expanded"]  # query expansion measured on the same server (issue 27)
        assert expanded["expand"] == 2 and expanded["p50_ms"] > 0 and "search" in expanded["phases_ms"]
        assert figures["peak_rss_mb"]["search app"] > 0 and figures["disk_bytes_per_image"] > 0
        bench = "bench (fills, and holds Milvus Lite)"  # what of its RSS the kernel cannot drop
        assert 0 < figures["anonymous_mb"][bench] <= figures["rss_mb"][bench]
    assert (tmp_path / "lite" / "rows.f32").stat().st_size == 2000 * 2048 * 4
    table = scale.render(report)
    assert "| lite FLAT | 2,000 |" in table and ", anonymous " in table and "; αQE k=2: " in table
    scale.plot(report, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert scale.parse_sizes("20k,1M,100000") == [20_000, 100_000, 1_000_000]
    with pytest.raises(ValueError):
        scale.parse_sizes("10")



def test_the_scale_stage_measures_the_up_stacks_milvus_lite_server_and_stops_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--backends lite-server`: the collection lives in a `milvus-lite server` process, as under
    `imgsearch up`; its memory is measured, and it is gone when the stage ends."""
    import psutil

    from benchmarks import scale

    for name in ("MILVUS_URI", "DATABASE_URL", "MILVUS_HOST", "MYSQL_HOST", "DEFAULT_TABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(scale, "QUERIES", 5)
    monkeypatch.setattr(scale, "REQUESTS", 3)
    figures = scale.run([600], ["lite-server"], tmp_path, real=40, say=lambda _: None)["backends"]["lite-server"]["600"]
    assert figures["milvus"]["recall_at_10"] == 1.0 and figures["duplicates_seconds"] > 0
    assert figures["peak_rss_mb"]["milvus-lite server"] > 50, "the server's own memory, measured"
    assert (tmp_path / "lite-server" / "milvus.db").exists()
    serving_it = [process.pid for process in psutil.process_iter(["cmdline"])
                  if str(tmp_path) in " ".join(process.info["cmdline"] or [])]
    assert serving_it == [], "the server is stopped with the stage"