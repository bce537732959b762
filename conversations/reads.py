"""Unread markers: how far each agent has read each conversation.

A conversation is unread for an agent while it has contact messages newer than the
agent's mark (all of them when there is no mark); closed conversations are history
and never unread. The pane moves the mark when it shows the newest messages
(``mark_read``); the list reads the count as one column of its rows query
(``unread_column``: a correlated subquery per shown row, an index range over the
conversation's messages newer than the mark, capped at ``UNREAD_CAP``).
"""

from datetime import datetime

from django.conf import settings
from django.db import connection, models
from django.db.models.expressions import RawSQL

UNREAD_CAP = 99


class ReadMark(models.Model):
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # No constraint: a mark written while its conversation is being deleted (from
    # the admin) must not block the delete; a mark left behind is never read.
    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # The newest contact message the agent has been shown (its created_at).
    read_upto = models.DateTimeField()

    class Meta:
        app_label = "conversations"
        constraints = [
            models.UniqueConstraint(fields=["agent", "conversation"], name="readmark_unique")
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} read {self.conversation_id} up to {self.read_upto}"


def mark_read(*, agent, conversation_id: int, upto: datetime) -> bool:
    """Move the agent's mark forward to ``upto`` (never back). True when it moved."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO conversations_readmark (agent_id, conversation_id, read_upto)
            SELECT %(agent)s, id, %(upto)s FROM conversations_conversation WHERE id = %(id)s
            ON CONFLICT (agent_id, conversation_id) DO UPDATE
                SET read_upto = EXCLUDED.read_upto
                WHERE conversations_readmark.read_upto < EXCLUDED.read_upto
            RETURNING 1
            """,
            {"agent": agent.pk, "id": conversation_id, "upto": upto},
        )
        return cursor.fetchone() is not None


def unread_column(agent_id: int | None) -> RawSQL:
    """The number of contact messages ``agent_id`` has not seen, per conversation
    row (0 for closed ones), at most UNREAD_CAP + 1."""
    sql = f"""
        CASE WHEN conversations_conversation.status = 'closed' THEN 0 ELSE (
            SELECT count(*) FROM (
                SELECT 1 FROM conversations_message m
                WHERE m.conversation_id = conversations_conversation.id
                  AND m.direction = 'inbound'
                  AND m.created_at > COALESCE((
                      SELECT r.read_upto FROM conversations_readmark r
                      WHERE r.agent_id = %s
                        AND r.conversation_id = conversations_conversation.id
                  ), '-infinity')
                LIMIT {UNREAD_CAP + 1}
            ) unread
        ) END
    """  # noqa: S608 - a constant; the agent is a parameter
    return RawSQL(sql, [agent_id or 0], output_field=models.IntegerField())  # noqa: S611


# The agent's mark (every agent's, without one) moves back to just before the newest
# contact message: the conversation shows one unread message again. Conversations
# without a contact message have nothing to show as unread.
_MARK_UNREAD = """
    WITH newest AS (
        SELECT c.id, (SELECT max(m.created_at) FROM conversations_message m
                      WHERE m.conversation_id = c.id AND m.direction = 'inbound') AS at
        FROM unnest(%(ids)s::bigint[]) AS c(id)
    ), moved AS (
        UPDATE conversations_readmark r SET read_upto = newest.at - interval '1 microsecond'
        FROM newest
        WHERE r.conversation_id = newest.id AND newest.at IS NOT NULL
          AND r.read_upto >= newest.at AND (%(agent)s::bigint IS NULL OR r.agent_id = %(agent)s)
    )
    SELECT 1
"""


def mark_unread(conversation_ids: list[int], *, agent_id: int | None = None) -> None:
    """Make the conversations unread again for ``agent_id`` (None: every agent)."""
    with connection.cursor() as cursor:
        cursor.execute(_MARK_UNREAD, {"ids": list(conversation_ids), "agent": agent_id})
