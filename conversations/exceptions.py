"""Refusals the core raises, each with a machine code and a human sentence.

The inbox shows ``detail`` as a message, the API answers ``{"error": code,
"detail": detail}`` with ``http_status``, the admin shows ``detail`` as a form error
or a message. Pure Python: no Django import, so every layer can use them.
"""


class ParleyError(Exception):
    """Base of every refusal: nothing was changed when one is raised."""

    code = "error"
    http_status = 409
    default_detail = "The request was refused."

    def __init__(self, detail: str | None = None, *, code: str | None = None):
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        super().__init__(self.detail)

    def as_dict(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


class IllegalTransition(ParleyError):
    code = "illegal_transition"
    default_detail = "That change of status is not allowed."


class ConversationOngoing(IllegalTransition):
    code = "conversation_ongoing"
    default_detail = "The conversation is ongoing; start the flow with priority to interrupt it."


class ConversationClosed(IllegalTransition):
    # Same machine code as any refused transition (PRODUCT.md §3); the sentence says why.
    default_detail = "The conversation is closed; closed conversations are read-only."


class NotArchivable(IllegalTransition):
    code = "not_archivable"
    default_detail = "Only closed conversations can be archived."


class NotArchived(IllegalTransition):
    default_detail = "The conversation is not archived."


class ChangedMeanwhile(ParleyError):
    """The change was asked for from a page that no longer shows the conversation
    as it is (an optimistic version check)."""

    code = "changed_meanwhile"
    default_detail = "Changed a moment ago by someone else; nothing was changed."


class TagsLocked(ParleyError):
    code = "tags_locked"
    default_detail = "Tags are locked: the conversation is closed."


class ContactExists(ParleyError):
    code = "contact_exists"
    default_detail = "A contact with this channel and external id already exists."


class InvalidInput(ParleyError):
    code = "invalid_input"
    http_status = 422
    default_detail = "The input is not valid."


class IdempotencyKeyInvalid(InvalidInput):
    code = "invalid_idempotency_key"
    default_detail = (
        "The Idempotency-Key header must be 1 to 255 printable ASCII characters "
        "(a UUID is a good key)."
    )


class IdempotencyKeyReused(ParleyError):
    code = "idempotency_key_reused"
    http_status = 422
    default_detail = (
        "This Idempotency-Key was already used for a different request; "
        "send a new key with a new request."
    )
