"""Automation: flows (ordered steps), their runs, broadcasts and their deliveries.

Fields, constraints and intent-named querysets only. The engine that runs flows and
broadcasts lives in ``engine.py`` and ``broadcasts.py``; every status change goes through
``conversations.services``.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from conversations.models import Contact, Conversation, Tag
from conversations.transitions import STATUS_CHOICES, STATUS_LABELS, Status

KEYWORD_MAX_LENGTH = 50


class Flow(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=200, blank=True)
    trigger_keyword = models.CharField(
        max_length=KEYWORD_MAX_LENGTH,
        blank=True,
        help_text=(
            "Optional. A contact who writes exactly this word (case-insensitive) while "
            "not in an agent's hands starts the flow."
        ),
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive flows cannot be started and their keyword is ignored."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("trigger_keyword"),
                condition=~Q(trigger_keyword=""),
                name="flow_unique_keyword_ci",
                violation_error_message="Another flow already uses this trigger keyword.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.trigger_keyword = " ".join(self.trigger_keyword.split())


class StepKind(models.TextChoices):
    SEND_MESSAGE = "send_message", "Send message"
    ASK = "ask", "Ask (wait for the reply)"
    ADD_TAG = "add_tag", "Add tag"
    MARK_IN_PROGRESS = "mark_in_progress", "Mark in progress (ends the run)"
    HAND_OFF = "hand_off", "Hand off to an agent (ends the run)"
    ASSIGN = "assign", "Assign to an agent (ends the run)"
    CLOSE = "close", "Close (ends the run)"


class Expect(models.TextChoices):
    TEXT = "text", "Any text"
    NAME = "name", "A name (“My name is Eve” gives Eve)"
    NUMBER = "number", "A whole number in a range"
    CHOICE = "choice", "One of some choices"


class FlowStep(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(
        help_text="Steps run in ascending order; change the numbers to reorder."
    )
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    text = models.TextField(
        blank=True,
        help_text="The message (send message, ask). {name} and {attribute} are filled in.",
    )
    attribute = models.SlugField(
        max_length=50, blank=True, help_text="Ask: the contact attribute the reply is stored in."
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.PROTECT, null=True, blank=True, related_name="flow_steps"
    )
    expects = models.CharField(
        max_length=10,
        choices=Expect.choices,
        default=Expect.TEXT,
        blank=True,  # a form that leaves it out means any text
        help_text="Ask: what the reply must be; a reply that does not fit is asked again.",
    )
    min_value = models.IntegerField(null=True, blank=True, help_text="Ask a number: the lowest.")
    max_value = models.IntegerField(null=True, blank=True, help_text="Ask a number: the highest.")
    choices = models.CharField(
        max_length=200,
        blank=True,
        help_text="Ask one of some choices: the answers accepted, comma-separated (any case).",
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Assign: this agent; empty = the least-loaded available agent.",
    )
    template = models.CharField(
        max_length=512,
        blank=True,
        help_text=(
            "Send message, ask: on WhatsApp, send this approved template instead of the text "
            "(needed outside WhatsApp's 24-hour window, e.g. a broadcast's first message)."
        ),
    )
    template_params = models.TextField(
        blank=True,
        help_text="The template's parameters {{1}}, {{2}}…, one per line; {name} and "
        "{attribute} are filled in.",
    )

    class Meta:
        ordering = ["flow", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "position"], name="flowstep_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_kind_display()}"

    @property
    def sends_message(self) -> bool:
        return self.kind in (StepKind.SEND_MESSAGE, StepKind.ASK)

    def clean(self) -> None:
        self.expects = self.expects or Expect.TEXT
        errors = {}
        if self.kind in (StepKind.SEND_MESSAGE, StepKind.ASK) and not self.text.strip():
            errors["text"] = "This step sends a message: write its text."
        if self.kind == StepKind.ASK and not self.attribute:
            errors["attribute"] = "Name the contact attribute that stores the reply."
        if self.kind == StepKind.ADD_TAG and self.tag_id is None:
            errors["tag"] = "Choose the tag to add."
        if self.kind == StepKind.ASK:
            errors |= self._expectation_errors()
        if self.agent_id is not None and self.kind != StepKind.ASSIGN:
            errors["agent"] = "Only an assign step names an agent."
        elif self.agent_id is not None and not self.agent.is_active:
            errors["agent"] = "This agent's account is inactive; choose an active agent."
        if errors:
            raise ValidationError(errors)

    def _expectation_errors(self) -> dict:
        errors = {}
        if self.expects == Expect.NUMBER:
            if self.min_value is None or self.max_value is None:
                errors["max_value"] = "Give the lowest and the highest number accepted."
            elif self.min_value > self.max_value:
                errors["max_value"] = "The highest number is below the lowest."
        if self.expects == Expect.CHOICE and len(self.choice_list) < 2:
            errors["choices"] = "Give at least two answers, separated by commas."
        return errors

    @property
    def choice_list(self) -> list[str]:
        return [c.strip() for c in self.choices.split(",") if c.strip()]


class RunState(models.TextChoices):
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting for a reply"
    FINISHED = "finished", "Finished"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATES = (RunState.RUNNING, RunState.WAITING)


class Trigger(models.TextChoices):
    AGENT = "agent", "Agent"
    KEYWORD = "keyword", "Keyword"
    BROADCAST = "broadcast", "Broadcast"
    API = "api", "API"
    ADMIN = "admin", "Admin"


class FlowRunQuerySet(models.QuerySet):
    def active(self):
        return self.filter(state__in=ACTIVE_RUN_STATES)


class FlowRun(models.Model):
    """One flow running on one conversation, with the steps it executed (``log``)
    and how it ended (``outcome``)."""

    flow = models.ForeignKey(Flow, on_delete=models.PROTECT, related_name="runs")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="flow_runs"
    )
    broadcast = models.ForeignKey(
        "Broadcast", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The status before the flow ("" = no open conversation): FLOW_COMPLETE returns to it.
    status_before_flow = models.CharField(max_length=20, choices=STATUS_CHOICES, blank=True)
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.RUNNING)
    # Index into the flow's ordered steps of the step to run next (or the waiting ask).
    cursor = models.PositiveIntegerField(default=0)
    log = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=30, blank=True)
    outcome_detail = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = FlowRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(state__in=ACTIVE_RUN_STATES),
                name="flowrun_one_active_per_conversation",
                violation_error_message="This conversation already has a running flow.",
            ),
        ]
        indexes = [models.Index(fields=["flow", "-started_at"], name="flowrun_by_flow")]

    def __str__(self) -> str:
        return f"{self.flow} on #{self.conversation_id} ({self.get_state_display()})"


class Segment(models.TextChoices):
    ALL = "all", "Everyone"
    TAG = "tag", "Tagged …"
    CHANNEL = "channel", "On channel …"
    STATUS = "status", "Whose conversation is …"


def segment_label(segment: str, value: str) -> str:
    """A segment in words: "Everyone", "Tagged “vip”", "On channel web", "Whose
    conversation is In progress" (Closed: no open conversation)."""
    if segment == Segment.TAG:
        return f"Tagged “{value}”"
    if segment == Segment.CHANNEL:
        return f"On channel {value}"
    if segment == Segment.STATUS:
        if value == Status.CLOSED:
            return "Whose conversation is closed (none open)"
        return f"Whose conversation is {STATUS_LABELS.get(value, value)}"
    return "Everyone"


class BroadcastState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Broadcast(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.PROTECT, related_name="broadcasts")
    segment = models.CharField(max_length=10, choices=Segment.choices, default=Segment.ALL)
    # The tag name, the channel or the status, depending on ``segment``.
    segment_value = models.CharField(max_length=50, blank=True)
    has_priority = models.BooleanField(default=False)
    state = models.CharField(
        max_length=10, choices=BroadcastState.choices, default=BroadcastState.QUEUED
    )
    total = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Staff have it without a grant (PRODUCT.md §10; flows.broadcasts.may_broadcast).
        permissions = [("start_broadcast", "Can start a broadcast to a segment")]

    def __str__(self) -> str:
        return f"Broadcast #{self.pk}: {self.flow}"

    @property
    def processed(self) -> int:
        return self.sent + self.skipped + self.failed

    @property
    def percent(self) -> int:
        if self.state == BroadcastState.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, self.processed * 100 // self.total)

    @property
    def is_running(self) -> bool:
        return self.state in (BroadcastState.QUEUED, BroadcastState.RUNNING)

    @property
    def segment_label(self) -> str:
        return segment_label(self.segment, self.segment_value)


class BroadcastChunkQuerySet(models.QuerySet):
    def stalled(self):
        """Not done and past the lease (whether a worker still holds the row is for
        the caller to ask: ``select_for_update(skip_locked=True)``)."""
        return self.filter(done_at__isnull=True, lease_expires_at__lt=timezone.now())


class BroadcastChunk(models.Model):
    """A slice of a broadcast's contacts (by id range), run as one background task in
    one transaction: several workers run chunks side by side, and a chunk that died
    half-way left nothing behind and simply runs again.

    ``lease_expires_at``: the chunk was handed to the queue until then. A chunk not
    done, past its lease and whose row nobody holds locked (a worker running it
    holds the lock until it commits) is stalled: its worker died. Any live worker's
    sweep (``flows.broadcasts.broadcast_sweep``) then runs it again."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_contact_id = models.BigIntegerField()
    last_contact_id = models.BigIntegerField()
    done_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    objects = BroadcastChunkQuerySet.as_manager()

    class Meta:
        ordering = ["broadcast", "index"]
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "index"], name="broadcastchunk_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.broadcast_id}/{self.index}: {self.first_contact_id}–{self.last_contact_id}"


class DeliveryOutcome(models.TextChoices):
    STARTED = "started", "Started"
    SKIPPED = "skipped", "Skipped (ongoing)"
    FAILED = "failed", "Failed"


class BroadcastDelivery(models.Model):
    """One contact of a broadcast: at most one row per (broadcast, contact), written
    in the same transaction as the flow start, so a resumed broadcast never sends
    twice."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="deliveries")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=10, choices=DeliveryOutcome.choices)
    reason = models.CharField(max_length=200, blank=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast", "contact"], name="broadcastdelivery_unique_contact"
            ),
        ]
        indexes = [models.Index(fields=["broadcast", "outcome"], name="delivery_by_outcome")]

    def __str__(self) -> str:
        return f"{self.broadcast_id} → {self.contact_id}: {self.outcome}"
