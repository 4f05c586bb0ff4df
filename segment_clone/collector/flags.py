"""Mixpanel's feature-flag endpoints, served from a definitions file so that flags can be
tested with no Mixpanel project.

``GET /flags/definitions`` answers the definitions as Mixpanel's API does, for local
evaluation; ``GET /flags?context=JSON[&flag_key=K]`` evaluates them for remote evaluation with
the SDK's own engine (``segment_clone.mixpanel.flags.evaluation``), so a variant is the same
whichever way it is asked for. Both are SDK-facing: any origin, no token, and subject to fault
injection like ingestion. The debugger's ``GET``/``POST /api/flags`` read and replace the
definitions while the collector runs (the pytest plugin's ``mixpanel_flags`` fixture does too).

Exposure events are ordinary Mixpanel events (``$experiment_started`` on ``/track``): they are
stored, and shown by the debugger, like any other.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson

from ..mixpanel.flags.evaluation import evaluate
from ..mixpanel.flags.types import ExperimentationFlag, ExperimentationFlags, SelectedVariant
from .routing import HTTPError, Request, Response, Route


def load_definitions(path: str | Path) -> dict[str, Any]:
    """The definitions document in the file at ``path``: ``{"flags": [...]}`` as Mixpanel's API
    answers it, or the bare list of flags. Raises ``ValueError`` naming what is wrong."""
    try:
        document = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ValueError(f"cannot read flag definitions from {path}: {error}") from None
    return document if isinstance(document, dict) else {"flags": document}


class FlagDefinitions:
    """The collector's flag definitions: replaced whole, read by both endpoints."""

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._document: dict[str, Any] = {"code": 200, "flags": []}
        self._parsed: list[ExperimentationFlag] = []
        if document is not None:
            self.replace(document)

    def replace(self, document: Any) -> None:
        """Take ``document`` (``{"flags": [...]}`` or a list of flags) as the definitions;
        ``ValueError`` if a flag lacks a field the SDKs need."""
        if isinstance(document, list):
            document = {"flags": document}
        if not isinstance(document, dict) or not isinstance(document.get("flags"), list):
            raise ValueError('flag definitions must be {"flags": [...]} or a list of flags')
        try:
            parsed = ExperimentationFlags.from_dict(document).flags
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"a flag definition is incomplete: {error!r}") from None
        for flag in parsed:
            flag.ruleset.variants.sort(key=lambda variant: variant.key)
        with self._lock:
            self._document = {"code": 200, "flags": document["flags"]}
            self._parsed = parsed

    def document(self) -> dict[str, Any]:
        with self._lock:
            return self._document

    def assigned(self, context: dict[str, Any], flag_key: str | None) -> dict[str, Any]:
        """The variants ``context`` is assigned, by flag key, as ``/flags`` answers them."""
        with self._lock:
            flags = self._parsed
        answer = {}
        for flag in flags:
            if flag_key is not None and flag.key != flag_key:
                continue
            outcome = evaluate(flag, context)
            if isinstance(outcome, SelectedVariant):
                answer[flag.key] = {
                    "variant_key": outcome.variant_key,
                    "variant_value": outcome.variant_value,
                    "experiment_id": outcome.experiment_id,
                    "is_experiment_active": outcome.is_experiment_active,
                    "is_qa_tester": outcome.is_qa_tester,
                }
        return answer


def routes(definitions: FlagDefinitions) -> list[Route]:
    def get_definitions(request: Request) -> Response:
        return Response.json(definitions.document())

    def get_flags(request: Request) -> Response:
        try:
            context = orjson.loads(request.query.get("context", "{}"))
        except orjson.JSONDecodeError:
            raise HTTPError(400, "invalid_context", "context must be JSON") from None
        if not isinstance(context, dict):
            raise HTTPError(400, "invalid_context", "context must be a JSON object")
        flags = definitions.assigned(context, request.query.get("flag_key"))
        return Response.json({"code": 200, "flags": flags})

    def set_definitions(request: Request) -> Response:
        try:
            definitions.replace(request.json())
        except ValueError as error:
            raise HTTPError(400, "invalid_flags", str(error)) from None
        return Response.json(definitions.document())

    return [
        Route("GET", "/flags/definitions", get_definitions, ingest=True, public=True),
        Route("GET", "/flags", get_flags, ingest=True, public=True),
        Route("GET", "/api/flags", get_definitions),
        Route("POST", "/api/flags", set_definitions),
    ]
