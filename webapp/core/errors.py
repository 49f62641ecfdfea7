"""One error shape for the whole API: every refusal is `{"errors": [{"path", "message"}, ...]}`.

`exception_handler` (settings REST_FRAMEWORK["EXCEPTION_HANDLER"]) renders, for labs, runs, consoles and classroom:

    TopologyError (netops)    400, one entry per problem (the document, or an operation on it, is invalid)
    LabBusyError (netops)     409 (another run or operation holds the lab)
    Refusal                   its status, its problems, plus the context it carries (`lab`, `run`)
    DRF's own exceptions      their status; a serializer's errors flattened to dotted paths, any other
                              `detail` as one entry with an empty path

A body whose errors are not about a field also keeps `detail` (the messages joined), which clients written before
this shape read.
"""
from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from netops.errors import LabBusyError, Problem, TopologyError


class Refusal(exceptions.APIException):
    """A refusal with problems and context (`extra`: keys added to the body, e.g. the current `lab`)."""

    def __init__(self, problems: list[Problem] | Problem | str, *, code: int = status.HTTP_400_BAD_REQUEST,
                 **extra: Any):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        self.status_code = code
        self.extra = extra
        super().__init__("; ".join(p.message for p in self.problems))


def body(problems: list[Problem], **extra: Any) -> dict[str, Any]:
    """The error body of `problems` (with `detail` when none names a path)."""
    out: dict[str, Any] = {"errors": [p.as_dict() for p in problems]}
    if problems and not any(p.path for p in problems):
        out["detail"] = "; ".join(p.message for p in problems)
    out.update(extra)
    return out


def response(problems: list[Problem], code: int = status.HTTP_400_BAD_REQUEST, **extra: Any) -> Response:
    return Response(body(problems, **extra), status=code)


def flatten(errors: Any, prefix: str = "") -> list[Problem]:
    """DRF's nested error dict/list flattened into path/message problems."""
    problems: list[Problem] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            path = key if key not in ("non_field_errors", "detail") else ""
            problems += flatten(value, f"{prefix}.{path}" if prefix and path else prefix or path)
    elif isinstance(errors, list):
        for i, value in enumerate(errors):
            if isinstance(value, (dict, list)):
                problems += flatten(value, f"{prefix}.{i}" if prefix else str(i))
            else:
                problems.append(Problem(prefix, str(value)))
    else:
        problems.append(Problem(prefix, str(errors)))
    return problems


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Refusal):
        return response(exc.problems, exc.status_code, **exc.extra)
    if isinstance(exc, TopologyError):
        return response(exc.problems)
    if isinstance(exc, LabBusyError):
        return response([Problem("", str(exc))], status.HTTP_409_CONFLICT)
    answer = drf_exception_handler(exc, context)
    if answer is None:  # not an API error: a bug, Django shows it
        return None
    answer.data = body(flatten(answer.data))
    return answer
