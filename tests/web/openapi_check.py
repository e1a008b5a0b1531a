"""Check real responses against the agent's own OpenAPI document (jsonschema, draft 2020-12) and
decode them strictly into the response types the document is generated from (web/shapes.py):
an unknown, missing or mistyped field fails, and re-encoding the decoded value must give the
response's exact bytes (field order included)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from monitor_agent.web import shapes
from monitor_agent.web.openapi import ROUTES

BASE = "urn:monitor-agent-openapi"


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class OpenAPIChecker:
    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.registry = Registry().with_resource(BASE, Resource(document, DRAFT202012))

    def response_schema_ref(self, path: str, method: str, status: int) -> dict[str, str]:
        op = self.document["paths"][path][method.lower()]
        assert str(status) in op["responses"], f"{method} {path} answered {status}, not in the document"
        ptr = _pointer(
            "paths", path, method.lower(), "responses", str(status), "content", "application/json", "schema"
        )
        return {"$ref": f"{BASE}#/{ptr}"}

    def check(self, response: httpx.Response, path: str | None = None) -> Any:
        """Validate a live response (status documented, JSON body matches); returns the body."""
        req = response.request
        path = path or req.url.path
        assert response.headers["content-type"].startswith("application/json"), response.text
        body = response.json()
        schema = self.response_schema_ref(path, req.method, response.status_code)
        Draft202012Validator(schema, registry=self.registry).validate(body)
        route = ROUTES[(path, req.method.lower())]
        shape = route.response if response.status_code == 200 or route.response is shapes.Ready else shapes.Error
        if shape is not None:
            decode_exactly(shape, response.content)
        return body

    def check_schema(self, name: str, instance: Any) -> None:
        schema = {"$ref": f"{BASE}#/components/schemas/{name}"}
        Draft202012Validator(schema, registry=self.registry).validate(instance)
        shape = getattr(shapes, name)
        decoded = msgspec.convert(instance, shape, strict=True)
        assert msgspec.to_builtins(decoded) == instance, (name, instance)


def decode_exactly(shape: type, content: bytes) -> Any:
    """`content` decoded strictly into `shape`; it must encode back to the very same bytes."""
    value = msgspec.json.decode(content, type=shape, strict=True)
    assert msgspec.json.encode(value) == content, (shape.__name__, content[:500])
    return value
