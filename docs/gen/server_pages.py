"""The reference pages of the HTTP server: its API (from the app's OpenAPI schema) and the Prometheus metrics it
exports (from nlptransfer.serve.monitoring). No trained model is loaded: the app is built around a stand-in that
has only what building the routes reads (the label map), and nothing is served."""
from __future__ import annotations

import json
from types import SimpleNamespace

from reference_pages import INTRO, cell, code


def openapi_schema() -> dict:
    """The OpenAPI schema of `nlptransfer serve` with its default settings (ServeConfig())."""
    from nlptransfer.data.schema import LabelMap
    from nlptransfer.serve.app import create_app
    from nlptransfer.serve.config import ServeConfig
    from nlptransfer.tasks import run_tasks

    labels = LabelMap(["negative", "positive"])
    stand_in = SimpleNamespace(label_map=labels, tasks=None, all_tasks=run_tasks(labels))
    app = create_app(stand_in, ServeConfig())
    return app.openapi()


def _schema_type(schema: dict, components: dict) -> str:
    """A JSON schema as a short type: string, array of string, PredictionOut, string or array of string."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_schema_type(s, components) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}), components)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_schema_type(schema['additionalProperties'], components)}"
    return kind


def _limits(schema: dict) -> list[str]:
    said = []
    for key, what in (("minItems", "at least {} items"), ("maxItems", "at most {} items"),
                      ("minLength", "at least {} characters"), ("maxLength", "at most {} characters")):
        if key in schema:
            said.append(what.format(schema[key]))
    for inner in schema.get("anyOf", []) + ([schema["items"]] if "items" in schema else []):
        said += _limits(inner)
    return list(dict.fromkeys(said))


def _model_table(name: str, schema: dict, components: dict) -> list[str]:
    required = set(schema.get("required", []))
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    lines += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for field, spec in schema.get("properties", {}).items():
        about = "; ".join(x for x in (spec.get("description", ""), ", ".join(_limits(spec))) if x)
        lines.append(f"| {code(field)} | {cell(_schema_type(spec, components))} | "
                     f"{'yes' if field in required else 'no'} | {cell(about)} |")
    return lines + [""]


def http_api_page() -> str:
    """reference/http-api.md: every endpoint of the server, its request body, responses and models."""
    from nlptransfer.serve.app import OPEN

    schema = openapi_schema()
    components = schema.get("components", {}).get("schemas", {})
    lines = ["# HTTP API", "", INTRO + " It is read from the server's OpenAPI schema, with the server's default "
             "settings; a running server serves the same schema at `/openapi.json` and an interactive page at "
             "`/docs`.", "",
             f"With `--api-key-env`, every path but {', '.join(f'`{p}`' for p in OPEN)} needs the header "
             "`Authorization: Bearer <key>`. Every error answers a JSON body "
             '`{"error": {"status": ..., "type": ..., "message": ...}}`.', "",
             "## Endpoints", ""]
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            lines += [f"### {method.upper()} {path}", ""]
            if op.get("summary"):
                lines += [op["summary"][0].upper() + op["summary"][1:] + ".", ""]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                lines += [f"Request body: {cell(_schema_type(body, components))} (JSON).", ""]
            lines += ["| status | meaning | body |", "| --- | --- | --- |"]
            for status, response in op.get("responses", {}).items():
                content = response.get("content", {})
                kind = next(iter(content), "")
                shape = _schema_type(content[kind].get("schema", {}), components) if kind else ""
                lines.append(f"| {status} | {cell(response.get('description', ''))} | {cell(shape)} |")
            lines.append("")
    lines += ["## Models", ""]
    for name, spec in components.items():
        lines += _model_table(name, spec, components)
    lines += ["## The OpenAPI schema", "", "The whole schema, as `/openapi.json` serves it:", "",
              "```json", json.dumps(schema, indent=2), "```", ""]
    return "\n".join(lines)


def metrics() -> list[tuple[str, str, str, list[str], list[str]]]:
    """Each metric the server exports: (name, type, help, label names, the series names it exposes)."""
    from prometheus_client.metrics import MetricWrapperBase

    from nlptransfer.serve.monitoring import Monitoring

    found = []
    for value in vars(Monitoring()).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, kind = value._name, value._type
        series = {"counter": [f"{name}_total", f"{name}_created"],
                  "histogram": [f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"]}
        found.append((name, kind, value._documentation, list(value._labelnames), series.get(kind, [name])))
    return found


def metrics_page() -> str:
    """reference/metrics.md: the Prometheus metrics of `nlptransfer serve` (GET /metrics)."""
    lines = ["# Server metrics", "", INTRO, "",
             "`GET /metrics` answers these in the Prometheus text format. With several worker processes "
             "(`--workers`, with `PROMETHEUS_MULTIPROC_DIR` set) it adds up every worker's figures. A `_created` "
             "series holds the time a counter or histogram started (one per label values).", "",
             "| metric | type | labels | help | series |", "| --- | --- | --- | --- | --- |"]
    for name, kind, about, labels, series in metrics():
        lines.append(f"| {code(name)} | {kind} | {cell(', '.join(labels))} | {cell(about)} | "
                     f"{cell(', '.join(series))} |")
    return "\n".join(lines + [""])
