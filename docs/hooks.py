"""mkdocs hooks: the tables that come from the code are made from it at each build, so they
cannot drift from it (the settings from the `Settings` class, the HTTP routes from the
OpenAPI document the app serves), and BENCHMARKS.md, kept at the top of the repository
where measurements are recorded, becomes the site's measurement log."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")
LOG_PAGE = "benchmarks-log.md"
PLOT = "benchmarks/scale.png"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _env_name(name: str, field: Any) -> str:
    return field.validation_alias if isinstance(field.validation_alias, str) else name.upper()


def _default(field: Any) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "shown_default" in extra:
        return f"`{extra['shown_default']}`"
    if field.default is None or field.default == "":
        return ""
    return f"`{field.default}`"


def settings_table() -> str:
    """Every setting of `imgsearch.settings.Settings`: its variable, default and meaning."""
    from imgsearch.settings import Settings

    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{_env_name(name, field)}` | {_default(field)} | {_cell(field.description or '')} |")
    return "\n".join(rows)


def routes_table() -> str:
    """Every route of the OpenAPI document `/openapi.json` serves: method, path, what it does,
    its parameters; 🔑 where API_KEY applies."""
    from search_app.openapi import document

    rows = ["| route | what | parameters |", "| --- | --- | --- |"]
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            key = " 🔑" if operation.get("security") else ""
            names = [f"`{p['name']}`" for p in operation.get("parameters", []) if p["in"] == "query"]
            if "requestBody" in operation:
                names.append("body: " + ", ".join(sorted(operation["requestBody"]["content"])))
            rows.append(f"| `{method.upper()} {path}`{key} | {_cell(operation['summary'])} | {', '.join(names)} |")
    return "\n".join(rows)


GENERATORS = {"settings": settings_table, "http-routes": routes_table}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda found: GENERATORS[found[1]](), markdown)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    log = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    files.append(File.generated(config, LOG_PAGE, content=log))
    files.append(File.generated(config, PLOT, abs_src_path=str(ROOT / PLOT)))
    return files
