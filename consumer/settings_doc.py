"""Render every setting as environment variables: ``.env.example`` and the README table."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from consumer.settings import REPO_ROOT, Settings

PREFIX = "TICKETSORT_"


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        import json

        return json.dumps(value) if value else ""
    text = str(value)
    root = str(REPO_ROOT)
    return "./" + text[len(root) + 1 :] if text.startswith(root + "/") else text


def settings_rows() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every leaf setting (its default, whatever the
    environment of the process that writes it says)."""
    rows: list[tuple[str, str, str]] = []
    for section_name, section_field in Settings.model_fields.items():
        section = section_field.get_default(call_default_factory=True)
        if not isinstance(section, BaseModel):
            continue
        for name, field in type(section).model_fields.items():
            variable = f"{PREFIX}{section_name.upper()}__{name.upper()}"
            default = _render(field.get_default(call_default_factory=True))
            if section_name == "kafka" and name == "bootstrap_servers":
                default = "127.0.0.1:19092"
            rows.append((variable, default, field.description or ""))
    return rows


def env_example() -> str:
    lines = [
        "# ticketsort settings: copy to .env and uncomment what you change.",
        "# KAFKA_BOOTSTRAP_SERVERS=broker1:9092,broker2:9092  (points every command at a cluster)",
        "",
    ]
    current = ""
    for variable, default, description in settings_rows():
        section = variable[len(PREFIX) :].split("__")[0]
        if section != current:
            lines += ["", f"# --- {section.lower()} ---"]
            current = section
        if description:
            lines.append(f"# {description}")
        lines.append(f"# {variable}={default}")
    return "\n".join(lines).strip() + "\n"
