"""The API schema's error answers: every operation documents the refusals any API view can give, in the one error
shape (webapp.core.errors), so a client (and the schema fuzz, tests/chaos/test_fuzz_api.py) can rely on them.

`error_responses` is a drf-spectacular postprocessing hook (settings SPECTACULAR_SETTINGS): it adds, where the view
does not say more itself, 401/403 (not signed in, or not allowed), 429 (a rate limit), 400 and 415 to operations
that take a body or parameters, 404 to those that name an object in their path, and gives every 4xx answer the
`Errors` body.
"""
from __future__ import annotations

from typing import Any

ERRORS_REF = {"$ref": "#/components/schemas/Errors"}
ERRORS_SCHEMA = {
    "type": "object",
    "description": "Every refusal: one entry per problem, each naming the element at fault by its dotted path",
    "properties": {"errors": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}},
    "required": ["errors"],
}
PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
    "required": ["path", "message"],
}
DESCRIPTIONS = {
    "400": "The request is invalid; each error names its field",
    "401": "Not signed in (or the token expired)",
    "403": "Not allowed",
    "404": "No such object, or you may not see it",
    "409": "Another operation holds the lab",
    "415": "The body's media type is not accepted",
    "429": "Too many requests; try again later",
}


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Errors", ERRORS_SCHEMA)
    schemas.setdefault("Problem", PROBLEM_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        for method, op in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            codes = ["401", "403", "429"]
            if op.get("requestBody") or op.get("parameters"):
                codes.append("400")
            if op.get("requestBody"):
                codes.append("415")
            if "{" in path:
                codes.append("404")
            for code in codes:
                responses.setdefault(code, {"description": DESCRIPTIONS[code]})
            for code, answer in responses.items():
                if str(code).startswith("4"):
                    answer.setdefault("description", DESCRIPTIONS.get(str(code), "Refused"))
                    answer["content"] = {"application/json": {"schema": ERRORS_REF}}
    return result
