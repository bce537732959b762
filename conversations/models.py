"""The core: contacts, their conversations, messages, tags and the status history.

Fields, constraints, indexes, triggers and intent-named querysets only. Every write
goes through ``services.py``; ``signals.py`` guards ``save()`` and the tag links; the
database (constraints here, triggers declared in ``triggers.py``) refuses what the
signals cannot see.
"""

import re
import unicodedata
from functools import reduce
from operator import and_

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.functions import Lower, Upper

from . import events
from . import triggers as guards
from .availability import Availability  # noqa: F401 - agents' available/away switch
from .events import ConversationEvent  # noqa: F401 - the change bus's table
from .inbox_settings import InboxSettings  # noqa: F401 - the admin-edited settings
from .reads import ReadMark  # noqa: F401 - unread markers
from .saved_replies import validate_placeholders
from .transitions import EVENT_CHOICES, ONGOING, OPEN, STATUS_CHOICES, TAGS_LOCKED, Status

MESSAGE_MAX_LENGTH = 10_000
PREVIEW_LENGTH = 160

# Tests of a channel slug: is it a web chat, whose unnamed contacts are anonymous
# visitors known only by a random cookie id? Filled in by ``connectors`` at start-up
# (this app imports nothing of ours).
VISITOR_CHANNEL_CHECKS: list = []


def contact_label(name: str, external_id: str, channel: str, pk: int | None) -> str:
    """How a contact is shown: its name; an unnamed web-chat visitor as "Visitor <id>"
    (stable and short, never the cookie's random id); else its external id."""
    if name:
        return name
    if pk is not None and any(check(channel) for check in VISITOR_CHANNEL_CHECKS):
        return f"Visitor {pk}"
    return external_id


def avatar_initial(label: str) -> str:
    """An avatar's letter: the label's first letter; "#" when it starts with a digit
    or a sign (a phone number's "+")."""
    first = next((ch for ch in label if ch.isalnum()), "")
    return first.upper() if first.isalpha() else "#"


# A search term with at least this many digits also looks for them in the external
# ids' digits (a phone number written "+33 6 12…", "0612…" or "612-…").
PHONE_DIGITS_MIN = 4


def external_id_digits():
    """The digits of a contact's external id (an expression; trigram-indexed)."""
    return Func(F("external_id"), Value(r"\D"), Value(""), Value("g"), function="regexp_replace")


class ContactQuerySet(models.QuerySet):
    def matching(self, term: str):
        """Contacts whose name holds every word of ``term`` in any order ("Sato Dana"
        finds "Dana Sato"), whose external id is ``term`` (any case), or whose external
        id's digits contain the term's digits when the term is a phone number or part
        of one (only digits, spaces and ``+-().``; its name match is then the whole
        term), or whose external id contains the term when it is one word with an ``@``
        or a ``.`` (part of an email address). Every branch has an index."""
        term = term.strip()
        words = term.split()
        if not words:
            return self.none()
        digits = re.sub(r"\D", "", term)
        if len(digits) >= PHONE_DIGITS_MIN and re.fullmatch(r"[\d\s+().-]+", term):
            # The name as one phrase: "6", "12" and "34" apart are too short for the
            # trigram index, which then returned every contact (250 ms at 200,000).
            found = Q(external_id__iexact=term) | Q(name__icontains=term)
            found |= Q(external_digits__contains=digits)
            return self.alias(external_digits=external_id_digits()).filter(found)
        found = Q(external_id__iexact=term) | reduce(and_, (Q(name__icontains=w) for w in words))
        if len(words) == 1 and len(term) >= 3 and ("@" in term or "." in term):
            # Part of an email address ("nadia.59", "@example.com", "example.com").
            found |= Q(external_id__icontains=term)
        return self.filter(found)


class Contact(models.Model):
    channel = models.SlugField(max_length=32)
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ContactQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                name="contact_unique_channel_external_id",
                violation_error_message=(
                    "A contact with this channel and external id already exists."
                ),
            ),
        ]
        indexes = [
            models.Index(Lower("name"), name="contact_name_lower"),
            # The inbox search matches an external id exactly (``iexact`` is UPPER = UPPER).
            models.Index(Upper("external_id"), name="contact_external_id_upper"),
            # The inbox search: ``icontains`` is ``UPPER(col) LIKE UPPER('%term%')``.
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="contact_name_trgm"),
            # Part of an email address or a domain in the external id (``icontains``).
            GinIndex(
                OpClass(Upper("external_id"), name="gin_trgm_ops"), name="contact_external_id_trgm"
            ),
            # Part of a phone number: the external ids' digits, ``LIKE '%digits%'``.
            GinIndex(
                OpClass(external_id_digits(), name="gin_trgm_ops"), name="contact_digits_trgm"
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.channel}:{self.external_id}"

    @property
    def display_name(self) -> str:
        return contact_label(self.name, self.external_id, self.channel, self.pk)

    @property
    def is_web_visitor(self) -> bool:
        """A web-chat visitor: its external id is a cookie's random id, never shown."""
        return any(check(self.channel) for check in VISITOR_CHANNEL_CHECKS)

    @property
    def initial(self) -> str:
        return avatar_initial(self.display_name)


# Characters a tag name may not hold: controls, format characters (zero-width
# spaces and joiners, bidi overrides and isolates), private use, unassigned, and line
# or paragraph separators. They make two names look the same or rearrange the text.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})


def clean_tag_name(value: str) -> str:
    """A tag name as it is stored and shown: NFKC (fullwidth and compatibility forms
    become their plain letters), spaces collapsed. Refuses invisible and bidi control
    characters with a ValidationError."""
    text = unicodedata.normalize("NFKC", value or "")
    hidden = sorted(
        {f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in _INVISIBLE_CATEGORIES}
    )
    if hidden:
        raise ValidationError(
            "A tag name cannot contain invisible or text-direction characters "
            f"({', '.join(hidden[:3])}).",
            code="invalid_tag_name",
        )
    return " ".join(text.split())


def tag_key(name: str) -> str:
    """The identity of a tag name: two names with the same key are the same tag.

    Unicode case folding over NFKC (``STRAẞE`` = ``straße`` = ``strasse``, the Kelvin
    sign = ``k``, ``ｆｏｏ`` = ``foo``), with the dotted capital I's fold (``i`` plus a
    combining dot) taken as a plain ``i`` (``İADE`` = ``iade``). Computed here, in
    one place, for the lookup and for the unique constraint alike."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.replace("i\u0307", "i").split())


class TagQuerySet(models.QuerySet):
    def named(self, name: str):
        """The tag whose name is ``name`` up to case, width and Unicode form."""
        return self.filter(key=tag_key(name))


class Tag(models.Model):
    name = models.CharField(max_length=50, validators=[clean_tag_name])
    # tag_key(name), kept by save(): the tag's identity, unique.
    key = models.CharField(max_length=200, editable=False)
    colour = models.CharField(
        max_length=7,
        default="#64748b",
        help_text="A hex colour such as #2563eb.",
    )

    objects = TagQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                name="tag_unique_key",
                violation_error_message="A tag with this name already exists.",
            ),
            models.CheckConstraint(condition=~Q(key=""), name="tag_key_not_empty"),
            models.CheckConstraint(
                condition=Q(colour__regex=r"^#[0-9A-Fa-f]{6}$"),
                name="tag_colour_hex",
                violation_error_message="The colour must be a hex colour such as #2563eb.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # The name's identity is derived data: keep it with the name, whatever saves it.
        self.name = clean_tag_name(self.name)
        self.key = tag_key(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "key"}
        super().save(*args, **kwargs)

    def clean(self):
        # Forms (the admin) see a look-alike name as the duplicate it is.
        if self.name:
            twin = Tag.objects.named(clean_tag_name(self.name)).exclude(pk=self.pk)
            if twin.exists():
                raise ValidationError(
                    {"name": f"A tag with this name already exists: “{twin.first().name}”."}
                )


class ConversationQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=OPEN)

    def ongoing(self):
        return self.filter(status__in=ONGOING)

    def closed(self):
        return self.filter(status=Status.CLOSED)

    def current(self):
        """Not closed: open, or resolved (its survey awaited). A contact has at most one."""
        return self.exclude(status=Status.CLOSED)

    def archived(self):
        return self.filter(archived_at__isnull=False)

    def not_archived(self):
        return self.filter(archived_at__isnull=True)

    def snoozed(self):
        return self.filter(snoozed_until__isnull=False)

    def not_snoozed(self):
        return self.filter(snoozed_until__isnull=True)

    def by_activity(self):
        """Most recently active first; ``id`` breaks ties so keyset pages are stable."""
        return self.order_by("-last_activity_at", "-id")


class Conversation(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=Status.NOT_CONTACTED)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
    )
    tags = models.ManyToManyField(
        Tag, through="ConversationTag", related_name="conversations", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_activity_at = models.DateTimeField()
    # Set when the contact writes and no agent has answered since: "longest waiting".
    waiting_since = models.DateTimeField(null=True, blank=True)
    last_message_preview = models.CharField(max_length=PREVIEW_LENGTH, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    archived_at = models.DateTimeField(null=True, blank=True)
    # Reports (#16): the first agent reply (who, when, and how long after the contact
    # began to wait) and how long from opening to closing; set once, never changed.
    first_response_at = models.DateTimeField(null=True, blank=True)
    first_response_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    resolution_seconds = models.PositiveIntegerField(null=True, blank=True)
    # CSAT: when it became Resolved (the survey window runs from then), and the
    # contact's answer, 1–5 (the agent it rates is ``closed_by``).
    resolved_at = models.DateTimeField(null=True, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    # Snoozed (not a status): out of the default views until then (conversations.snooze).
    snoozed_until = models.DateTimeField(null=True, blank=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[value for value, _ in STATUS_CHOICES]),
                name="conversation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(archived_at__isnull=True) | Q(status=Status.CLOSED),
                name="conversation_archived_only_when_closed",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status=Status.CLOSED, closed_at__isnull=False)
                    | (~Q(status=Status.CLOSED) & Q(closed_at__isnull=True))
                ),
                name="conversation_closed_at_iff_closed",
            ),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__range=(1, 5), status=Status.CLOSED),
                name="conversation_rating_1_to_5_when_closed",
            ),
            models.CheckConstraint(
                condition=~Q(status=Status.RESOLVED) | Q(resolved_at__isnull=False),
                name="conversation_resolved_at_when_resolved",
            ),
            models.UniqueConstraint(
                fields=["contact"],
                condition=~Q(status=Status.CLOSED),
                name="conversation_one_open_per_contact",
                violation_error_message="This contact already has an open conversation.",
            ),
        ]
        indexes = [
            # The default inbox view and every status tab, newest activity first.
            models.Index(
                fields=["-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=True),
                name="conv_inbox_activity",
            ),
            models.Index(
                fields=["status", "-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=True),
                name="conv_inbox_status_activity",
            ),
            models.Index(
                fields=["-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=False),
                name="conv_archived_activity",
            ),
            # The Closed tab: with only the two above, PostgreSQL walks the whole inbox
            # newest first and filters (it cannot see that archived implies closed),
            # skipping every newer open conversation. Its own index: one range scan.
            models.Index(
                fields=["-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=True, status=Status.CLOSED),
                name="conv_closed_activity",
            ),
            # The inbox by id: a filtered list's capped total (tag filter) merges the
            # tag's links with it instead of hashing every link (migration 0005).
            models.Index(
                fields=["id"], condition=Q(archived_at__isnull=True), name="conv_inbox_id"
            ),
            models.Index(
                fields=["assignee", "-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=True),
                name="conv_assignee_activity",
            ),
            # An assignee's conversations that are not snoozed (the default), and the
            # capped count of the unassigned ones: index only, not a walk by id.
            models.Index(
                fields=["assignee", "-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=True, snoozed_until__isnull=True),
                name="conv_assignee_unsnoozed",
            ),
            # The default view (open, mine or unassigned), newest activity first.
            models.Index(
                fields=["-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=True) & ~Q(status=Status.CLOSED),
                name="conv_open_activity",
            ),
            # "Needs me" by id, its assignee included: a filtered list's capped total
            # (a tag's links) is an index-only merge, not 23,000 rows hashed.
            models.Index(
                fields=["id"],
                include=["assignee"],
                condition=Q(archived_at__isnull=True, snoozed_until__isnull=True)
                & ~Q(status__in=[Status.CLOSED, Status.RESOLVED]),
                name="conv_needs_me_id",
            ),
            # The Mine and Unassigned views' counts (capped, index-only); the contact
            # for the reports' "assigned now" of one channel (index-only too).
            models.Index(
                fields=["assignee"],
                include=["contact"],
                condition=Q(archived_at__isnull=True) & ~Q(status=Status.CLOSED),
                name="conv_open_assignee",
            ),
            models.Index(
                fields=["waiting_since", "id"],
                condition=Q(waiting_since__isnull=False),
                name="conv_waiting",
            ),
            # The Snoozed view, and the wake query (the earliest due first).
            models.Index(
                fields=["-last_activity_at", "-id"],
                condition=Q(snoozed_until__isnull=False, archived_at__isnull=True),
                name="conv_snoozed_activity",
            ),
            models.Index(
                fields=["snoozed_until"],
                condition=Q(snoozed_until__isnull=False),
                name="conv_snoozed_until",
            ),
            models.Index(fields=["contact", "-created_at"], name="conv_contact_history"),
            # The periodic work: surveys whose window ended (idle In progress ones are a
            # range of conv_inbox_status_activity).
            models.Index(
                fields=["resolved_at"],
                condition=Q(status=Status.RESOLVED),
                name="conv_survey_awaited",
            ),
            # The inbox's change fingerprint reads the newest write (a MAX, one index probe).
            models.Index(fields=["updated_at"], name="conv_updated_at"),
        ]
        triggers = [
            guards.status_edges(),
            guards.status_recorded(),
            guards.closed_is_permanent(),
            guards.snooze_ends_on_close(),
            *guards.conversation_counts(),
            *events.triggers(),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.contact} ({self.get_status_display()})"

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        instance = super().from_db(db, field_names, values, **kwargs)
        # The pre_save guard compares the new status with the one loaded.
        if "status" in field_names:
            instance._loaded_status = values[field_names.index("status")]
        return instance

    @property
    def is_closed(self) -> bool:
        return self.status == Status.CLOSED

    @property
    def tags_locked(self) -> bool:
        return self.status in TAGS_LOCKED

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_snoozed(self) -> bool:
        return self.snoozed_until is not None


class ConversationTag(models.Model):
    """The conversation–tag link. A trigger refuses to insert, change or delete a link
    of a closed conversation (``triggers.tags_locked``)."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="tag_links"
    )
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="conversation_links")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "tag"], name="conversationtag_unique"),
        ]
        indexes = [
            models.Index(fields=["tag", "conversation"], name="conversationtag_by_tag"),
            models.Index(fields=["added_at"], name="conversationtag_added"),
        ]
        triggers = [guards.tags_locked(), *guards.link_counts()]

    def __str__(self) -> str:
        return f"{self.tag} on #{self.conversation_id}"


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class SenderKind(models.TextChoices):
    CONTACT = "contact", "Contact"
    AGENT = "agent", "Agent"
    FLOW = "flow", "Flow"
    BROADCAST = "broadcast", "Broadcast"
    SURVEY = "survey", "Survey"


class Message(models.Model):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=10, choices=Direction.choices)
    sender_kind = models.CharField(max_length=10, choices=SenderKind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(direction=Direction.INBOUND, sender_kind=SenderKind.CONTACT)
                    | (Q(direction=Direction.OUTBOUND) & ~Q(sender_kind=SenderKind.CONTACT))
                ),
                name="message_direction_matches_sender",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="message_thread"),
            GinIndex(OpClass(Upper("text"), name="gin_trgm_ops"), name="message_text_trgm"),
        ]
        triggers = guards.message_guards()

    def __str__(self) -> str:
        return f"{self.get_direction_display()} on #{self.conversation_id}: {self.text[:40]}"


class Source(models.TextChoices):
    """Who or what caused a change."""

    CONTACT = "contact", "Contact"
    AGENT = "agent", "Agent"
    FLOW = "flow", "Flow"
    BROADCAST = "broadcast", "Broadcast"
    ADMIN = "admin", "Admin"
    API = "api", "API"
    SYSTEM = "system", "System"


class StatusChange(models.Model):
    """One line of a conversation's history: every status change, archive and
    unarchive, with when, what and who."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(max_length=20, choices=STATUS_CHOICES, blank=True)
    to_status = models.CharField(max_length=20, choices=STATUS_CHOICES)
    event = models.CharField(max_length=30, choices=EVENT_CHOICES)
    source = models.CharField(max_length=10, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["conversation", "at", "id"], name="statuschange_timeline")]
        triggers = guards.status_change_guards()

    def __str__(self) -> str:
        return f"#{self.conversation_id}: {self.from_status or '—'} → {self.to_status}"


class Activity(models.Model):
    """A timeline line beyond status changes: assignment changes, tags added and
    removed, private notes, … (``Kind`` grows as needed; write with
    ``activity.record_activity`` or, set-based, ``Activity.objects.bulk_create``)."""

    class Kind(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        TAG_ADDED = "tag_added", "Tag added"
        TAG_REMOVED = "tag_removed", "Tag removed"
        NOTE = "note", "Note"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="activities"
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="activity_timeline")
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id}: {self.get_kind_display()}"


class Mention(models.Model):
    """An agent named (``@name``) in a private note: unread until they open the
    conversation (``read_at``)."""

    note = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="mentions")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["note", "agent"], name="mention_unique_note_agent")
        ]
        indexes = [
            models.Index(fields=["agent", "-id"], name="mention_agent_newest"),
            models.Index(
                fields=["agent", "conversation"],
                condition=Q(read_at__isnull=True),
                name="mention_agent_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"@{self.agent_id} in #{self.conversation_id}"


class SavedReply(models.Model):
    """A canned answer an agent inserts with ``/`` in the composer; ``body`` may hold
    placeholders (``saved_replies.PLACEHOLDERS``), filled when inserted."""

    title = models.CharField(max_length=100)
    body = models.TextField(
        max_length=MESSAGE_MAX_LENGTH,
        validators=[validate_placeholders],
        help_text="Placeholders: {{contact.name}}, {{contact.first_name}}, {{agent.name}}, "
        "{{agent.first_name}}, {{conversation.id}}.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_replies"
    )
    shared = models.BooleanField(default=False, help_text="Visible to every agent.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = [Lower("title"), "id"]
        verbose_name_plural = "saved replies"
        indexes = [models.Index(fields=["owner", "shared"], name="savedreply_owner")]

    def __str__(self) -> str:
        return self.title


class IdempotencyRecord(models.Model):
    """A write API request sent with an ``Idempotency-Key`` header, and its answer:
    written in the request's own transaction, read back when the key comes again
    (``idempotency.py``). Kept ``idempotency.KEY_LIFETIME``, then pruned."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    endpoint = models.TextField()  # "POST /api/v1/messages/inbound"
    request_hash = models.CharField(max_length=64)  # SHA-256 of the canonical JSON body
    status = models.PositiveSmallIntegerField()
    response = models.TextField()  # the JSON body, as it was sent
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.key}"
