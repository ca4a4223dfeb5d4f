"""Deployments on a real Prefect server (the session's API, tests/shared_prefect_api.py), served by
`imgsearch deploy`; `imgsearch up` starting `prefect server` is tested in tests/test_stack.py."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployments.definitions import prefect_yaml
from imgsearch.samples import Photo
from tests.conftest import ROOT, write_folder

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.usefixtures("weights")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_API", "MILVUS_", "MYSQL_", "DATABASE_URL", "DEFAULT_TABLE"))}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.update(extra)
    return env


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_runner_serves_schedules_runs_and_unpauses_nothing(
    prefect_api_url: str, tmp_path: Path, photos: list[Photo]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
    from prefect.deployments import run_deployment

    folder = tmp_path / "photos"
    write_folder(folder, photos, 6)
    env = clean_env(PREFECT_API_URL=prefect_api_url, DATA_DIR=str(tmp_path / "data"),
                    PREFECT_HOME=str(tmp_path / "runner-home"))
    runner_log = open(tmp_path / "runner.log", "w")
    runner = subprocess.Popen([str(BIN / "imgsearch"), "deploy", "--sync-path", str(folder)],
                              env=env, cwd=ROOT, stdout=runner_log, stderr=subprocess.STDOUT)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api = temporary_settings(updates={PREFECT_API_URL: prefect_api_url})
    api.__enter__()  # Prefect's settings do not follow os.environ once loaded
    try:
        async def deployments() -> dict[str, object]:
            async with get_client() as client:
                return {d.name: d for d in await client.read_deployments()}

        deadline = time.monotonic() + 120
        while len(found := run(deployments())) < 3:  # type: ignore[arg-type]
            assert runner.poll() is None and time.monotonic() < deadline, (tmp_path / "runner.log").read_text()
            time.sleep(1)
        assert found["sync"].schedules[0].schedule.cron == "0 2 * * *"  # type: ignore[attr-defined]
        assert found["reconcile"].schedules[0].schedule.cron == "0 3 * * 0"  # type: ignore[attr-defined]
        assert found["sync"].parameters == {"path": str(folder)}  # type: ignore[attr-defined]

        flow_run = run_deployment("sync-folder/sync", timeout=300)
        assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state

        async def evidence() -> tuple[list[str], list[str]]:
            async with get_client() as client:
                logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
                artifacts = await client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
            return [entry.message for entry in logs], [artifact.key or "" for artifact in artifacts]

        deadline = time.monotonic() + 60  # logs and artifacts reach the API asynchronously
        while True:
            messages, keys = run(evidence())  # type: ignore[misc]
            if any("removed 0 images" in m for m in messages) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert any("removed 0 images" in message for message in messages), messages
        assert "sync-summary-milvus-img-search" in keys
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=60)
        runner_log.close()

    try:
        after = run(deployments())
    finally:
        api.__exit__(None, None, None)
    assert not any(d.paused for d in after.values()), "stopping the runner left deployments paused"  # type: ignore[attr-defined]


def test_prefect_yaml_is_generated_from_the_definitions() -> None:
    assert (ROOT / "prefect.yaml").read_text() == prefect_yaml()


def test_prefect_yaml_deploys_onto_a_process_work_pool(prefect_api_url: str, tmp_path: Path,
                                                       photos: list[Photo]) -> None:
    """`prefect deploy --all` with the generated prefect.yaml, run by `prefect worker start`."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    write_folder(tmp_path / "photos", photos, 4)
    env = clean_env(PREFECT_API_URL=prefect_api_url, DATA_DIR=str(tmp_path / "data"), IMGSEARCH_HOME=str(ROOT),
                    SYNC_PATH=str(tmp_path / "photos"), PREFECT_HOME=str(tmp_path / "home"))
    prefect = str(BIN / "prefect")
    for command in ([prefect, "work-pool", "create", "imgsearch", "--type", "process"],
                    [prefect, "--no-prompt", "deploy", "--all"]):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, (command, done.stdout[-1500:], done.stderr[-1500:])
    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", "imgsearch"], cwd=tmp_path, env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_api_url}):
            flow_run = run_deployment("sync-folder/sync", timeout=400)
        assert flow_run.state is not None and flow_run.state.is_completed(), (
            flow_run.state, (tmp_path / "worker.log").read_text()[-3000:])
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
