"""Demo flows and a finished broadcast (idempotent; runs after ``seed_demo``).

- "Welcome" (keyword "hi"): greet, ask the name, tag "welcome", hand off to an agent.
- "Feedback survey": ask a rating from 1 to 5, thank, close.
- One finished broadcast of the survey to the contacts with no open conversation,
  run here synchronously (the worker path is the same code).
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from conversations import services as core
from conversations.models import Conversation
from conversations.transitions import Status
from flows import broadcasts, engine
from flows.models import (
    ACTIVE_RUN_STATES,
    Broadcast,
    Expect,
    Flow,
    FlowStep,
    Segment,
    StepKind,
    Trigger,
)

WELCOME = "Welcome"
SURVEY = "Feedback survey"


def _flow(name: str, *, description: str, keyword: str, steps: list[dict]) -> tuple[Flow, bool]:
    flow, created = Flow.objects.get_or_create(
        name=name, defaults={"description": description, "trigger_keyword": keyword}
    )
    if created:
        for position, step in enumerate(steps, start=1):
            FlowStep.objects.create(flow=flow, position=position * 10, **step)
    return flow, created


class Command(BaseCommand):
    help = "Create the demo flows (welcome, feedback survey) and one finished broadcast."

    @transaction.atomic
    def handle(self, *args, **options):
        welcome_tag = core.tag_get_or_create(name="welcome", colour="#7c3aed")
        welcome, created_welcome = _flow(
            WELCOME,
            description="Greets a contact who writes “hi”, asks the name, hands off.",
            keyword="hi",
            steps=[
                {"kind": StepKind.SEND_MESSAGE, "text": "Hi! Welcome to Parley support."},
                {
                    "kind": StepKind.ASK,
                    "text": "What's your first name?",
                    "attribute": "name",
                    "expects": Expect.NAME,
                },
                {
                    "kind": StepKind.SEND_MESSAGE,
                    "text": "Thanks, {name}! An agent will be with you in a moment.",
                },
                {"kind": StepKind.ADD_TAG, "tag": welcome_tag},
                {"kind": StepKind.HAND_OFF},
            ],
        )
        survey, created_survey = _flow(
            SURVEY,
            description="Asks for a rating from 1 to 5, thanks, closes.",
            keyword="",
            steps=[
                {
                    "kind": StepKind.ASK,
                    "text": "How would you rate our help, from 1 to 5?",
                    "attribute": "rating",
                    "expects": Expect.NUMBER,
                    "min_value": 1,
                    "max_value": 5,
                },
                {"kind": StepKind.SEND_MESSAGE, "text": "Thank you for your feedback!"},
                {"kind": StepKind.CLOSE},
            ],
        )
        # seed_demo's conversations "in a flow" run the Welcome flow, waiting for the name.
        for conversation in Conversation.objects.filter(status=Status.IN_FLOW).exclude(
            flow_runs__state__in=ACTIVE_RUN_STATES
        ):
            engine.flow_start(
                flow=welcome, conversation=conversation, has_priority=True, trigger=Trigger.ADMIN
            )
        broadcast = Broadcast.objects.filter(flow=survey).order_by("pk").first()
        if broadcast is None:
            broadcast = broadcasts.broadcast_create(
                flow=survey, segment=Segment.STATUS, segment_value="closed", enqueue=False
            )
        broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
        self.stdout.write(
            f"Flows: {welcome.name} ({'created' if created_welcome else 'kept'}), "
            f"{survey.name} ({'created' if created_survey else 'kept'}). "
            f"Broadcast #{broadcast.pk}: {broadcast.state}, sent {broadcast.sent}, "
            f"skipped {broadcast.skipped}, failed {broadcast.failed}."
        )
