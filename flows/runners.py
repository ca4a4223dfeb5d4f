"""The one place that decides where chunk tasks run: threads here, or a Dask cluster."""

from __future__ import annotations

import os
from typing import Literal, TypeVar

from prefect.task_runners import ThreadPoolTaskRunner

from imgsearch.settings import get_settings

RunnerKind = Literal["threads", "dask"]
F = TypeVar("F")


def with_runner(flow: F, kind: RunnerKind) -> F:
    """`flow` with its chunk tasks on `kind`; Dask refuses Milvus Lite (one process per file)."""
    if kind == "threads":
        return flow
    get_settings().require_milvus_server("--task-runner dask")
    return flow.with_options(task_runner=task_runner(kind))  # type: ignore[attr-defined, no-any-return]


def task_runner(kind: RunnerKind = "threads", workers: int = 2) -> object:
    """Threads (default: two chunks in flight in this process), or prefect-dask's
    DaskTaskRunner: the cluster at DASK_ADDRESS, else a LocalCluster of `workers`
    single-threaded processes. Each Dask worker builds the model once (the
    encoder is cached per process) and keeps it for every chunk it runs.

    Several processes cannot share a Milvus Lite file: with Dask, MILVUS_URI must
    be a server (`milvus-lite server`, Milvus standalone or a cluster)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=2)
    from prefect_dask import DaskTaskRunner

    address = os.environ.get("DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})
