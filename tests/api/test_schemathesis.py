"""schemathesis against the OpenAPI schema, over real HTTP (``live_server``) with a
valid bearer token (issue 12): every operation with a bounded number of generated
examples, valid and invalid, then stateful sequences along the links schemathesis
infers (an id a response returns, used by the next call). Asserts no server error
and responses that conform to the schema (status codes, content type, body).

Bounded: about 25 examples per operation and a few short sequences (< 40 s)."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import positive_data_acceptance

from config.api import api as ninja_api
from connectors.tokens import token_create
from conversations.transitions import Status
from flows.models import Flow, FlowStep, StepKind
from tests.factories import StaffFactory, TagFactory, conversation_in

# Ids from 1: the small ids schemathesis tries first are the rows made below.
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

# SCHEMATHESIS_EXAMPLES=500 SCHEMATHESIS_RANDOM=1 for a deeper run by hand.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The same examples every run (a failure is reproducible), unless asked otherwise.
    derandomize=not os.environ.get("SCHEMATHESIS_RANDOM"),
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def auth_headers(db):
    """A staff token (broadcasts need the permission) and a few rows in every
    state for the generated ids to reach: conversations 1-6, flows 1-2, a tag."""
    staff = StaffFactory(username="fuzzer")
    for status in (Status.NEW, Status.IN_PROGRESS, Status.NOT_CONTACTED, Status.CLOSED):
        conversation_in(status, agent=staff, tags=[TagFactory(name=f"t-{status}")])
    conversation_in(Status.CLOSED, agent=staff, archived=True)
    conversation_in(Status.IN_FLOW)
    for active in (True, False):
        flow = Flow.objects.create(name=f"flow {active}", is_active=active)
        FlowStep.objects.create(flow=flow, position=10, kind=StepKind.SEND_MESSAGE, text="Hi")
    return {"Authorization": f"Bearer {token_create(user=staff, name='schemathesis')[1]}"}


# Schema-valid data may still be refused with 422 by rules a JSON schema cannot
# state (an opaque cursor that was never issued, a text of spaces only, a segment value
# that names no tag): every other check runs, including that schema-invalid data is
# refused.
EXCLUDED = [positive_data_acceptance]

schema = schemathesis.openapi.from_dict(ninja_api.get_openapi_schema())


@schema.parametrize()
@SETTINGS
def test_every_operation_conforms_and_never_fails(case, live_server, auth_headers):
    case.call_and_validate(base_url=live_server.url, headers=auth_headers, excluded_checks=EXCLUDED)


STATEFUL_SETTINGS = settings(
    SETTINGS, max_examples=max(15, EXAMPLES // 2), stateful_step_count=8, phases=[Phase.generate]
)


def test_sequences_along_the_inferred_links_conform_and_never_fail(live_server, auth_headers):
    """Stateful: ninja writes no OpenAPI links, schemathesis infers them from the
    response schemas and path parameters (a contact's conversation id → reply, close,
    archive, tags…), so the later calls reach existing rows, not only 404s."""
    machine = schema.as_state_machine()
    assert schema.statistic.transitions.total > 0, "no links between the operations"

    class Workflow(machine):
        def after_call(self, response, case):
            statuses.append(response.status_code)

        def get_call_kwargs(self, case):
            return {"base_url": live_server.url, "headers": auth_headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response, excluded_checks=EXCLUDED, headers=auth_headers, transport_kwargs=kwargs
            )

    statuses = []
    Workflow.run(settings=STATEFUL_SETTINGS)
    assert not [status for status in statuses if status >= 500]
    # The sequences reach existing rows: successes, not only refusals. How many
    # depends on the generated sequences, which vary with the session and spread
    # thinner as operations are added (4 of them with snooze, notes and reports
    # in; many calls are schemathesis's own unauthenticated probes, 401).
    assert sum(200 <= status < 300 for status in statuses) >= 1, statuses
