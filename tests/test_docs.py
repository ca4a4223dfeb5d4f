"""The documentation: a README a newcomer reads to the end, and a MkDocs site that builds in
strict mode (a broken link, a missing page or anchor fails), whose generated tables cover the code."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from imgsearch.settings import Settings
from tests.conftest import ROOT

README_MOST_LINES = 150


def hooks() -> object:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_short_and_its_links_lead_somewhere() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MOST_LINES
    assert text.startswith("# imgsearch\n\n```bash\n./setup.sh && .venv/bin/imgsearch demo")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if not target.startswith(("http://", "https://"))]
    assert len(local) >= 12
    assert [target for target in local if not (ROOT / target).exists()] == []


def test_the_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    settings_page = (tmp_path / "site" / "settings" / "index.html").read_text(encoding="utf-8")
    assert "<!-- generated" not in settings_page and "MYSQL_PWD" in settings_page
    api_page = (tmp_path / "site" / "http-api" / "index.html").read_text(encoding="utf-8")
    assert "/api/collections/{name}/duplicates/resolve" in api_page
    for image in ("phone_browse.png", "phone_detail.png", "phone_results.png"):
        assert (tmp_path / "site" / "images" / image).stat().st_size > 10_000
    assert (tmp_path / "site" / "benchmarks-log" / "index.html").exists()


def test_the_settings_table_has_every_setting_with_its_meaning() -> None:
    table = hooks().settings_table()  # type: ignore[attr-defined]
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias if isinstance(field.validation_alias, str) else name.upper()
        assert f"| `{variable}` |" in table, variable
        assert field.description, f"{variable} has no description for the settings page"


def test_the_routes_table_has_every_route_the_app_serves() -> None:
    from starlette.routing import Route

    from search_app.app import create_app

    table = hooks().routes_table()  # type: ignore[attr-defined]
    served = {(method, route.path) for route in create_app().routes if isinstance(route, Route)
              for method in (route.methods or {"GET"}) - {"HEAD"}}
    undocumented = {"/", "/openapi.json", "/docs"}  # the page, the document itself, its viewer
    for method, path in sorted(served):
        if path not in undocumented:
            assert f"`{method} {path}`" in table, (method, path)
