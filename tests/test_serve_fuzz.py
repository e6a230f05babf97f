"""Schemathesis (the real package) against the server's OpenAPI schema, on a live server on 127.0.0.1: whatever
it sends, no 5xx, and every response matches its declared schema."""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
import schemathesis.config  # noqa: E402

from .test_serve import run, server  # noqa: E402,F401  (the run fixture, and the server it starts)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(run):  # noqa: F811
    with server(run, "--max-texts", "16") as (url, _):
        # a body over the size limit is refused with 413 (declared in the schema) before it is parsed: for
        # schemathesis's "invalid data is rejected" check, 413 is a rejection like 400 and 422
        config = schemathesis.config.SchemathesisConfig.from_str(
            '[checks.negative_data_rejection]\nexpected-statuses = ["400", "401", "413", "422"]\n')
        yield schemathesis.openapi.from_url(url + "/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
def test_the_api_holds_to_its_schema(case):
    case.call_and_validate()
