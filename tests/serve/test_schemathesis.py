"""Property-based API tests against the OpenAPI schema: no input ever gets a 500.

Bounded (a few examples per operation, no deadline) so the run fits CI. Platform-only
operations are called with a platform key, the rest with an admin key, so requests get past
authentication and reach the validation and database code.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from serve.main import create_app
from tests.serve.conftest import ADMIN_KEY, FakeScreener, make_settings

PLATFORM_KEY = "jw_platform_key_for_schemathesis"
EXAMPLES = 25


@pytest.fixture
def api_schema(database_url: str):
    app = create_app(make_settings(database_url), screener=FakeScreener(), start_worker=False)
    from serve import crud

    with app.state.services.db.write() as session:
        crud.create_api_key(session, name="fuzz", role="platform", tenant="fuzz", actor=None, key=PLATFORM_KEY)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _checker(operation, key: str, failures: list[str]):  # noqa: ANN001, ANN202 - schemathesis types
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case) -> None:  # noqa: ANN001 - schemathesis Case
        response = case.call(headers={"X-API-Key": key})
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200}: {response.status_code}")

    return check


def test_no_server_errors(api_schema) -> None:  # noqa: ANN001 - schemathesis schema
    # Deletions last, so that revoking a key or term does not starve the other operations.
    operations = sorted(
        (result.ok() for result in api_schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE"
    )
    assert len(operations) >= 20
    failures: list[str] = []
    for operation in operations:
        platform_only = operation.path.startswith(("/v1/screen", "/v1/jobs"))
        _checker(operation, PLATFORM_KEY if platform_only else ADMIN_KEY, failures)()
    assert not failures, failures[:5]
