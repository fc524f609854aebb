"""Schemathesis against the running server, driven by /api/0/openapi.json: generated requests
(valid and invalid) to every operation, as an admin, must never get a 5xx nor an answer that
breaks the document (status, content type, headers, body schema)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from core.models import Role
from tests.api.conftest import Tenant, insert_events, make_api_token, make_tenant

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
# API_FUZZ_EXAMPLES=200 explores further (with fresh random cases each run); the default run
# replays the same cases every time, so the suite does not flake.
EXAMPLES_PER_OPERATION = int(os.environ.get("API_FUZZ_EXAMPLES", "15"))
DERANDOMIZE = "API_FUZZ_EXAMPLES" not in os.environ


def test_generated_requests_get_no_5xx_and_match_the_document(
    api_url: str, engine: Engine, warehouse: Any
) -> None:
    tenant: Tenant = make_tenant(engine, "fuzzed")
    [event_id] = insert_events(warehouse, tenant.org_id, tenant.project_id, tenant.issue_id, 1,
                               tags={"url": "https://shop.example/cart"})
    token = make_api_token(engine, tenant.org_id, tenant.admin_id, Role.admin)
    headers = {"Authorization": f"Bearer {token}"}
    # Most generated slugs and ids name nothing (404); half the cases use real ones, so the
    # handlers behind the lookups are exercised too.
    real = {"org": tenant.org, "project": tenant.project, "issue_id": tenant.issue_id,
            "key_id": tenant.key_id, "event_id": event_id}

    schema = schemathesis.openapi.from_url(f"{api_url}/api/0/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30

    failures: list[str] = []
    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  derandomize=DERANDOMIZE, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), use_real=st.booleans())
        def run(case: Any, use_real: bool) -> None:
            if use_real and case.path_parameters:
                for name in case.path_parameters:
                    if name in real:
                        case.path_parameters[name] = real[name]
            case.call_and_validate(base_url=api_url, headers=headers, checks=CHECKS,
                                   timeout=30)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then fail
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    if failures:
        pytest.fail("\n\n".join(failures))
