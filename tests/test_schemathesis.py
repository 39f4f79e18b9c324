"""API fuzzing from the app's own OpenAPI schema: no 500s, and every response matches the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)

from composer.api import create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(tiny_model_dir):
    """The schema served by an app with the tiny model, called in-process (ASGI)."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(tiny_model_dir, workers=2,
                                                                       queue_limit=64))


OPERATIONS = [("GET", "/api/health"), ("GET", "/api/options"), ("POST", "/api/compose"),
              ("POST", "/api/continue"), ("POST", "/api/infill"), ("POST", "/api/score")]
# Examples per operation and mode: enough to reach every field, small enough for CI.
EXAMPLES = {"positive": 100, "negative": 100}


CASES = [(method, path, mode) for method, path in OPERATIONS for mode in ("positive", "negative")
         if method == "POST" or mode == "positive"]  # a GET without parameters has no bad form


@pytest.mark.parametrize("method, path, mode", CASES)
def test_api_conforms_to_its_schema(api_schema, method, path, mode):
    """Valid requests (positive) and requests that break the schema (negative)."""
    operation = api_schema[path][method]
    strategy = operation.as_strategy(schemathesis.GenerationMode(mode))

    @given(case=strategy)
    @settings(max_examples=EXAMPLES[mode], deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code < 500

    run()


def test_every_operation_is_fuzzed(api_schema):
    operations = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert operations == set(OPERATIONS)
