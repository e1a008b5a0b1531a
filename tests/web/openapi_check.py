"""Check real responses against the agent's own OpenAPI document (jsonschema, draft 2020-12)."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

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
        return body

    def check_schema(self, name: str, instance: Any) -> None:
        schema = {"$ref": f"{BASE}#/components/schemas/{name}"}
        Draft202012Validator(schema, registry=self.registry).validate(instance)
