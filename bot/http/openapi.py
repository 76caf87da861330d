"""The OpenAPI 3.1 document, written from the same pydantic models that validate the requests (:mod:`.schemas`):
the paths are listed here once, every body and answer is a model's JSON Schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from . import schemas

PROBLEM = {"description": "an error (RFC 9457)",
           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDoc"}}}}


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict:
    return {str(code): PROBLEM for code in codes}


def _form_schema() -> dict:
    """The multipart body: the form model's fields (all strings on the wire) plus its files."""
    fields = schemas.StylizationForm.model_json_schema()
    props = {"content": {"type": "string", "format": "binary", "description": "the picture or clip to stylize"},
             "style": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 2,
                       "description": "one or two style pictures (instead of `preset`)"}}
    for name, prop in fields["properties"].items():
        props[name] = {k: v for k, v in prop.items() if k != "title"}
    return {"type": "object", "properties": props, "required": ["content"], "$defs": fields.get("$defs", {})}


def document(version: str = "1.0.0") -> dict[str, Any]:
    models = [schemas.Stylization, schemas.StylizationList, schemas.PresetList, schemas.MethodList,
              schemas.ModelMetadata, schemas.Health, schemas.ProblemDoc]
    components: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    form = _form_schema()
    for name, sub in form.pop("$defs").items():
        components.setdefault(name, sub)
    form = _fix_refs(form)
    job_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
    auth = [{"apiKey": []}, {}]
    paths = {
        "/v1/presets": {"get": {"summary": "The presets", "operationId": "listPresets", "security": auth,
                                "responses": {"200": _json(schemas.PresetList, "the enabled presets"),
                                              **_errors(401, 429)}}},
        "/v1/presets/{name}/thumbnail": {"get": {
            "summary": "A preset's thumbnail", "operationId": "presetThumbnail",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}}, **_errors(404)}}},
        "/v1/methods": {"get": {"summary": "What each method takes", "operationId": "listMethods", "security": auth,
                                "responses": {"200": _json(schemas.MethodList, "the available methods"),
                                              **_errors(401, 429)}}},
        "/v1/stylizations": {
            "post": {"summary": "Start a stylization", "operationId": "createStylization", "security": auth,
                     "parameters": [
                         {"name": "Prefer", "in": "header", "schema": {"type": "string", "examples": ["wait=30"]},
                          "description": "wait=N (N <= 60): answer 200 with the finished job if done in time"},
                         {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 128},
                          "description": "the same key with the same request gives the same job"}],
                     "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}},
                     "responses": {"200": _json(schemas.Stylization, "finished within Prefer: wait"),
                                   "202": _json(schemas.Stylization, "accepted (Location: the job)"),
                                   **_errors(400, 401, 413, 415, 422, 429)}},
            "get": {"summary": "The caller's recent stylizations", "operationId": "listStylizations",
                    "security": auth, "responses": {"200": _json(schemas.StylizationList, "newest first"),
                                                    **_errors(401, 429)}}},
        "/v1/stylizations/{id}": {
            "get": {"summary": "A stylization", "operationId": "getStylization", "security": auth,
                    "parameters": [job_id], "responses": {"200": _json(schemas.Stylization, "the job"),
                                                          **_errors(401, 404, 429)}},
            "delete": {"summary": "Cancel it and delete its files", "operationId": "deleteStylization",
                       "security": auth, "parameters": [job_id],
                       "responses": {"204": {"description": "deleted"}, **_errors(401, 404, 429)}}},
        "/v1/stylizations/{id}/result": {"get": {
            "summary": "The result", "operationId": "getResult", "security": auth,
            "parameters": [job_id, {"name": "format", "in": "query",
                                    "schema": {"type": "string", "enum": ["png", "jpeg", "jpg"]}}],
            "responses": {"200": {"description": "PNG or JPEG (by Accept or format); mp4 or GIF for clips",
                                  "content": {"image/png": {}, "image/jpeg": {}, "video/mp4": {}, "image/gif": {}}},
                          **_errors(401, 404, 422, 429)}}},
        "/v1/stylizations/{id}/events": {"get": {
            "summary": "Server-Sent Events: position, progress, done", "operationId": "streamEvents",
            "security": auth, "parameters": [job_id],
            "responses": {"200": {"description": "text/event-stream", "content": {"text/event-stream": {}}},
                          **_errors(401, 404, 429)}}},
        "/model/predict": {"post": {
            "summary": "MAX contract: stylize with a preset, answer a JPEG of the input's size",
            "operationId": "maxPredict", "security": auth,
            "parameters": [{"name": "model", "in": "query", "required": True,
                            "schema": {"type": "string", "pattern": schemas.PRESET_NAME}}],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "properties": {"image": {"type": "string", "format": "binary"}},
                "required": ["image"]}}}},
            "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                          **_errors(400, 401, 413, 422, 429, 503)}}},
        "/model/metadata": {"get": {"summary": "MAX contract: what the model is", "operationId": "maxMetadata",
                                    "responses": {"200": _json(schemas.ModelMetadata, "the model")}}},
        "/healthz": {"get": {"summary": "Alive", "operationId": "healthz",
                             "responses": {"200": _json(schemas.Health, "alive")}}},
        "/readyz": {"get": {"summary": "Database and queue reachable", "operationId": "readyz",
                            "responses": {"200": _json(schemas.Health, "ready"), **_errors(503)}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "Stylebot API", "version": version,
                     "description": "Neural style transfer as a service: presets or any picture as the style, "
                                    "quick or high quality, pictures and clips."},
            "paths": paths,
            "components": {"schemas": _fix_refs(components),
                           "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                                          "description": "python -m bot apikey create NAME"}}}}


def _fix_refs(node: Any) -> Any:
    """pydantic's local ``#/$defs/X`` references, pointed at the components."""
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" and isinstance(v, str)
                    else _fix_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_refs(v) for v in node]
    return node
