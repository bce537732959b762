"""Guards, not side effects.

These receivers refuse, at the model layer, what the status machine and the tag
lock forbid, whoever calls ``save()``, ``delete()`` or the m2m managers:

- ``pre_save`` on Conversation compares the status loaded from the database (kept
  by ``Conversation.from_db``) with the new one and refuses an edge the table
  (``transitions.ALLOWED_EDGES``) does not have; a new row must start in one of
  ``transitions.INITIAL_STATUSES``.
- ``m2m_changed`` refuses ``pre_add``/``pre_remove``/``pre_clear`` on a closed
  conversation, forward (``conversation.tags``) and reverse (``tag.conversations``).
- ``pre_save``/``pre_delete`` on the ConversationTag link and ``pre_delete`` on Tag
  refuse touching a closed conversation's tags directly.

What signals cannot see: ``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``,
``QuerySet.delete()`` of links without loading them, and raw SQL. Those are covered
by the database itself: the check and unique constraints on Conversation, and the
PostgreSQL triggers of migration 0002 (status edges on UPDATE, tag links of closed
conversations on INSERT/UPDATE/DELETE, which also stops deleting a tag that a
closed conversation carries).
"""

from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save
from django.dispatch import receiver

from .exceptions import IllegalTransition, TagsLocked
from .models import Conversation, ConversationTag, Tag
from .transitions import ALLOWED_EDGES, INITIAL_STATUSES, STATUS_LABELS, TAGS_LOCKED, Status


def _label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


@receiver(pre_save, sender=Conversation)
def refuse_illegal_status_change(sender, instance: Conversation, raw: bool, **kwargs) -> None:
    if raw:  # loaddata writes what a dump holds
        return
    new = instance.status
    if instance._state.adding:
        if new not in INITIAL_STATUSES:
            raise IllegalTransition(
                f"A conversation cannot start as {_label(new)}; it starts as Not contacted, "
                "New or In a flow."
            )
        return
    before = getattr(instance, "_loaded_status", None)
    if before is None:
        before = (
            Conversation.objects.filter(pk=instance.pk).values_list("status", flat=True).first()
        )
    if before is None or before == new:
        return
    if (before, new) not in ALLOWED_EDGES:
        if before == Status.CLOSED:
            raise IllegalTransition(
                "A closed conversation cannot be reopened; when the contact writes again "
                "a new conversation starts."
            )
        raise IllegalTransition(f"A conversation cannot go from {_label(before)} to {_label(new)}.")


@receiver(post_save, sender=Conversation)
def remember_saved_status(sender, instance: Conversation, **kwargs) -> None:
    instance._loaded_status = instance.status


@receiver(m2m_changed, sender=Conversation.tags.through)
def refuse_tag_change_on_closed(sender, instance, action, reverse, model, pk_set, **kwargs):
    if action not in ("pre_add", "pre_remove", "pre_clear"):
        return
    if not reverse:
        # instance is a Conversation; trust the database, not a stale instance.
        if Conversation.objects.filter(pk=instance.pk, status__in=TAGS_LOCKED).exists():
            raise TagsLocked()
        return
    # instance is a Tag; pk_set holds conversation ids (None for clear).
    closed = Conversation.objects.filter(status__in=TAGS_LOCKED)
    if action == "pre_add":
        closed = closed.filter(pk__in=pk_set or ())
    elif action == "pre_remove":
        closed = closed.filter(pk__in=pk_set or (), tags=instance)
    else:
        closed = closed.filter(tags=instance)
    if closed.exists():
        raise TagsLocked(
            f"Tags are locked: a closed conversation carries the tag “{instance.name}”."
        )


@receiver(pre_save, sender=ConversationTag)
def refuse_link_on_closed(sender, instance: ConversationTag, raw: bool, **kwargs) -> None:
    if raw:
        return
    if Conversation.objects.filter(pk=instance.conversation_id, status__in=TAGS_LOCKED).exists():
        raise TagsLocked()


@receiver(pre_delete, sender=ConversationTag)
def refuse_unlink_on_closed(sender, instance: ConversationTag, **kwargs) -> None:
    if Conversation.objects.filter(pk=instance.conversation_id, status__in=TAGS_LOCKED).exists():
        raise TagsLocked()


@receiver(pre_delete, sender=Tag)
def refuse_deleting_locked_tag(sender, instance: Tag, **kwargs) -> None:
    carried = Conversation.objects.filter(status__in=TAGS_LOCKED, tags=instance).count()
    if carried:
        raise TagsLocked(
            f"The tag “{instance.name}” is carried by {carried} closed "
            f"conversation{'s' if carried != 1 else ''} and cannot be deleted."
        )
