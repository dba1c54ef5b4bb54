"""The only code that changes a message's state: track, send, confirm, fail, record_delivery,
expire_overdue.

Each change is atomic: a compare-and-set UPDATE (the state guard), the event row, and the
outbox row of the provider call it causes, in one transaction (for confirm and fail on
PostgreSQL, one statement: ``combined_writes``). Signals go out after commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models.sql import UpdateQuery
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _

from . import combined_writes, guard, outbox, signals, verifications
from .conf import app_settings, feedback_window
from .errors import field_error
from .expiry import expire_batch
from .models import Message, MessageEvent, ProviderCall, Verification
from .providers.base import get_provider, provider_keys
from .recipients import Recipient, parse_recipient
from .states import (
    DELIVERY_RANK,
    LATE_FROM,
    CallState,
    Channel,
    Delivery,
    EventKind,
    Feedback,
    Source,
    can_transition,
)

logger = logging.getLogger(__name__)

MessageRef = Message | uuid.UUID | str

_SIGNAL_NAMES: dict[Signal, str] = {
    signals.message_tracked: "message_tracked",
    signals.feedback_changed: "feedback_changed",
    signals.delivery_changed: "delivery_changed",
}


def _send_robust(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal``; a receiver that raises is logged, never turned into the caller's error.

    The change it announces is already committed: an exception here would tell the caller it
    failed (and a retry would find nothing to do), and would skip the work queued after it.
    """
    for receiver, result in signal.send_robust(sender=Message, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "feedback_app: a %s receiver (%s) raised",
                _SIGNAL_NAMES.get(signal, "signal"),
                getattr(receiver, "__qualname__", repr(receiver)),
                exc_info=(type(result), result, result.__traceback__),
            )


def _on_commit_send(signal: Signal, **kwargs: Any) -> None:
    transaction.on_commit(lambda: _send_robust(signal, **kwargs))


def _aware(value: object, field: str) -> datetime:
    if value is None:
        return timezone.now()
    if not isinstance(value, datetime):
        raise field_error(field, _("Expected a datetime."), "invalid")
    if timezone.is_naive(value):
        raise field_error(field, _("Expected a timezone-aware datetime."), "naive")
    return value


def _check_provider(provider: object) -> str:
    if not isinstance(provider, str) or provider not in provider_keys():
        raise field_error(
            "provider", _("Unknown provider %(value)r.") % {"value": provider}, "unknown_provider"
        )
    return provider


#: ``Source.values`` builds a new list on each use; every change checks its source.
_SOURCES = frozenset(Source.values)


def _check_source(source: object) -> str:
    if not isinstance(source, str) or source not in _SOURCES:
        raise field_error("source", _("Unknown source %(value)r.") % {"value": source})
    return str(source)


def actor_name(actor: object) -> str:
    """How ``actor`` (a user, or any object) is recorded beside a change it made."""
    if actor is None:
        return ""
    name = actor.get_username() if hasattr(actor, "get_username") else str(actor)
    # PostgreSQL refuses NUL in text; the actor is free text from the caller.
    return name.replace("\x00", "")[:150]


def get_message(
    message: MessageRef | None = None,
    *,
    provider: str | None = None,
    provider_message_id: str | None = None,
) -> Message:
    """The message named by a Message, its public UUID, or (provider, provider_message_id).

    Raises ``Message.DoesNotExist`` when there is none, ``ValidationError`` for a malformed
    reference.
    """
    if isinstance(message, Message) and provider is None and provider_message_id is None:
        return message
    return Message.objects.get(**_lookup(message, provider, provider_message_id))


def _lookup(
    message: MessageRef | None, provider: str | None, provider_message_id: str | None
) -> dict[str, Any]:
    """The filter that finds the referenced message, checked without a query."""
    if message is not None:
        if provider is not None or provider_message_id is not None:
            raise ValidationError(_("Give either a message or a provider and its message id."))
        if isinstance(message, Message):
            return {"pk": message.pk}
        try:
            pk = message if isinstance(message, uuid.UUID) else uuid.UUID(str(message))
        except (ValueError, TypeError, AttributeError) as exc:
            raise field_error("message", _("Not a valid message id."), "invalid") from exc
        return {"pk": pk}
    if not provider or not provider_message_id:
        raise ValidationError(_("Give either a message or a provider and its message id."))
    if not isinstance(provider, str) or not isinstance(provider_message_id, str):
        raise ValidationError(_("provider and provider_message_id must be strings."))
    _check_text("provider_message_id", provider_message_id, required=True)
    return {"provider": provider, "provider_message_id": provider_message_id}


def track(
    *,
    provider: str,
    provider_message_id: str,
    to: str,
    purpose: str = "otp",
    channel: str = Channel.SMS,
    sender: str = "",
    sent_at: datetime | None = None,
    feedback_requested: bool = True,
    metadata: dict[str, Any] | None = None,
    delivery_status: str = Delivery.QUEUED,
    provider_status: str = "",
    message_id: uuid.UUID | None = None,
    source: str = Source.PYTHON,
    verification: str | None = None,
) -> Message:
    """Record a message the host app sent itself.

    ``verification`` is the host's key of the attempt this message belongs to (a login attempt
    id...): messages tracked with the same key are one verification, the later ones resends
    (docs/verifications.md). Bad input raises ``ValidationError`` naming the field, and nothing
    is written.
    """
    _check_provider(provider)
    _check_source(source)
    verification_hash = verifications.check_key(verification)
    sent_at = _aware(sent_at, "sent_at")
    if not isinstance(feedback_requested, bool):
        raise field_error("feedback_requested", _("Expected a boolean."))
    _check_channel(channel)
    recipient = parse_recipient(to, channel)
    message = _new_message(
        message_id=message_id or uuid.uuid4(),
        provider=provider,
        provider_message_id=provider_message_id,
        recipient=recipient,
        channel=channel,
        purpose=purpose,
        sender=sender,
        sent_at=sent_at,
        feedback_requested=feedback_requested,
        metadata=metadata,
        delivery_status=delivery_status,
        provider_status=provider_status,
    )
    verifications.check_existing(verification_hash, recipient, message.purpose)
    _insert(message, source, verification_hash, recipient)
    return message


def send(
    *,
    provider: str,
    to: str,
    body: str,
    purpose: str = "otp",
    channel: str = Channel.SMS,
    sender: str | None = None,
    metadata: dict[str, Any] | None = None,
    source: str = Source.PYTHON,
    message_id: uuid.UUID | None = None,
    verification: str | None = None,
    client: str | None = None,
    **options: Any,
) -> Message:
    """Send ``body`` through the provider with feedback enabled and track the result.

    The body goes to the provider and nowhere else. Every argument is validated before the
    provider is called, so bad input sends nothing. Provider errors (``RetryableError``,
    ``PermanentError``) reach the caller and nothing is written. Choose ``message_id`` yourself
    to put ``confirmation_token(message_id)`` in the body (a link that confirms the message).
    ``verification``: the host's key of the attempt, as for ``track``; a resend is a new send
    with the same key.

    The guard (docs/guard.md) is asked first: a refusal raises ``SendBlocked`` and calls no
    provider. ``verification`` and ``client`` (``"user:<id>"`` or ``"ip:<address>"``, who
    asked) are what its per-verification and per-client limits count.
    """
    _check_provider(provider)
    _check_source(source)
    _check_channel(channel)
    verification_hash = verifications.check_key(verification)
    if not isinstance(body, str) or not body:
        raise field_error("body", _("Expected a non-empty string."))
    if message_id is not None and not isinstance(message_id, uuid.UUID):
        raise field_error("message_id", _("Expected a UUID."))
    recipient = parse_recipient(to, channel)
    # The whole row as it will be written, checked now: the provider's answer fills in the rest.
    message = _new_message(
        message_id=message_id or uuid.uuid4(),
        provider=provider,
        provider_message_id=_PLACEHOLDER_ID,
        recipient=recipient,
        channel=channel,
        purpose=purpose,
        sender=sender,
        sent_at=timezone.now(),
        feedback_requested=True,
        metadata=metadata,
        delivery_status=Delivery.QUEUED,
        provider_status="",
    )
    if Message.objects.filter(pk=message.pk).exists():
        raise field_error("message_id", _("A message with this id already exists."), "duplicate")
    verifications.check_existing(verification_hash, recipient, message.purpose)
    guard.check(
        recipient,
        provider=provider,
        purpose=message.purpose,
        channel=channel,
        verification=guard.check_key("verification", verification),
        client=guard.check_key("client", client),
    )
    result = get_provider(provider).send(
        to=recipient.address,
        body=body,
        sender=sender,
        channel=channel,
        message_id=str(message.pk),
        **options,
    )
    # What the provider answered is checked as well; an error here is the backend's bug.
    message = _new_message(
        message_id=message.pk,
        provider=provider,
        provider_message_id=result.provider_message_id,
        recipient=recipient,
        channel=channel,
        purpose=message.purpose,
        sender=result.sender or sender or "",
        sent_at=timezone.now(),
        feedback_requested=True,
        metadata={**message.metadata, **result.metadata},
        delivery_status=result.delivery_status,
        provider_status=result.provider_status,
    )
    _insert(message, source, verification_hash, recipient)
    return message


#: Stands in for the provider's id while send() validates the row before the provider is called.
_PLACEHOLDER_ID = "placeholder"


def _check_channel(channel: object) -> None:
    if channel not in Channel.values:
        raise field_error(
            "channel", _("Unknown channel %(value)r.") % {"value": channel}, "invalid_choice"
        )


def _check_text(field: str, value: object, *, required: bool = False) -> str:
    """A string without NUL characters (PostgreSQL refuses them in text columns)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        expected = _("Expected a non-empty string.") if required else _("Expected a string.")
        raise field_error(field, expected)
    if "\x00" in value:
        raise field_error(field, _("NUL characters are not allowed."), "null_characters")
    return value


def _check_json(field: str, value: object) -> dict[str, Any]:
    """A JSON object every database stores: no NaN or infinity, no NUL in keys or strings."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise field_error(field, _("Expected a JSON object."))
    try:
        # allow_nan=False: PostgreSQL's jsonb and SQLite's json_valid() refuse NaN and Infinity.
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise field_error(
            field, _("Not valid JSON (%(error)s).") % {"error": str(exc)[:100]}, "invalid"
        ) from exc
    stack: list[object] = [value]
    while stack:  # no cycles: json.dumps refused them
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            raise field_error(field, _("NUL characters are not allowed."), "null_characters")
    return value


def _new_message(
    *,
    message_id: uuid.UUID,
    provider: str,
    provider_message_id: object,
    recipient: Recipient,
    channel: str,
    purpose: object,
    sender: object,
    sent_at: datetime,
    feedback_requested: bool,
    metadata: object,
    delivery_status: object,
    provider_status: object,
) -> Message:
    """The unsaved row, every field validated; raises ``ValidationError`` naming the field."""
    provider_message_id = _check_text("provider_message_id", provider_message_id, required=True)
    purpose = _check_text("purpose", purpose, required=True)
    sender = _check_text("sender", sender)
    provider_status = _check_text("provider_status", provider_status)
    metadata = _check_json("metadata", metadata)
    message = Message(
        id=message_id,
        provider=provider,
        provider_message_id=provider_message_id,
        channel=channel,
        purpose=purpose,
        sender=sender,
        recipient_hash=recipient.hash,
        recipient_masked=recipient.masked,
        country=recipient.country,
        recipient_prefix=recipient.prefix,
        delivery_status=delivery_status,
        provider_status=provider_status,
        feedback_requested=feedback_requested,
        sent_at=sent_at,
        feedback_deadline=sent_at + timedelta(seconds=feedback_window(provider, purpose)),
        metadata=metadata,
    )
    # Field validation (lengths, slug, choices, JSON); uniqueness is left to the database.
    message.full_clean(validate_unique=False, validate_constraints=False)
    return message


def _insert(
    message: Message, source: str, verification_hash: str | None, recipient: Recipient
) -> None:
    if message.delivery_status == Delivery.DELIVERED and message.delivered_at is None:
        message.delivered_at = message.sent_at  # delivered when sent (a Chime SENT, say)
    try:
        with transaction.atomic():
            if verification_hash is not None:
                verifications.attach(message, verification_hash, recipient)
            message.save(force_insert=True)
            MessageEvent.objects.create(
                message=message,
                kind=EventKind.DELIVERY,
                to_value=message.delivery_status,
                source=source,
                created_at=timezone.now(),
                detail={"provider_status": message.provider_status}
                if message.provider_status
                else {},
            )
            _on_commit_send(signals.message_tracked, message=message)
    except IntegrityError as exc:
        # Only the unique constraints are duplicates; any other integrity error is a bug to see.
        if Message.objects.filter(
            provider=message.provider, provider_message_id=message.provider_message_id
        ).exists():
            raise field_error(
                "provider_message_id",
                _("This provider message id is already tracked."),
                "duplicate",
            ) from exc
        if Message.objects.filter(pk=message.pk).exists():
            raise field_error(
                "message_id", _("A message with this id already exists."), "duplicate"
            ) from exc
        raise


def _change_feedback(
    target: str,
    message: MessageRef | None,
    *,
    provider: str | None,
    provider_message_id: str | None,
    at: datetime | None,
    source: str,
    actor: object,
    fresh: bool = False,
) -> bool:
    _check_source(source)
    explicit_at = at is not None
    at = _aware(at, "at")
    lookup = _lookup(message, provider, provider_message_id)
    connection = connections[router.db_for_write(Message)]
    # A row the caller read just now stands for the first read (see confirm()).
    known = message if fresh and isinstance(message, Message) else None
    while True:
        # One read of the row per attempt: the state the compare-and-set below guards, and the
        # fields the event, the report and the signal need. Outside the transaction: the
        # compare-and-set is what makes the change safe, not the read.
        msg = known or _read_message(lookup)
        known = None
        if msg is None:
            raise Message.DoesNotExist("Message matching query does not exist.")
        if at < msg.sent_at:
            if explicit_at:
                raise field_error("at", _("This is before the message was sent."), "before_sent")
            at = msg.sent_at  # the provider's clock ran ahead of ours
        current = msg.feedback
        if not can_transition(current, target):
            if msg is message:
                continue  # the caller's row said so: the database decides
            changed = False
            break
        converts = target == Feedback.CONFIRMED and msg.verification_id is not None
        now = timezone.now()
        updates: dict[str, Any] = {"feedback": target, "updated_at": now}
        detail: dict[str, Any] = {}
        if target == Feedback.CONFIRMED:
            late = current in LATE_FROM or at > msg.feedback_deadline
            updates.update(confirmed_at=at, confirmed_late=late)
            detail = {"late": late}
        event = MessageEvent(
            message_id=msg.pk,
            kind=EventKind.FEEDBACK,
            from_value=current,
            to_value=target,
            source=source,
            actor=actor_name(actor),
            created_at=at,
            detail=detail,
        )
        call = outbox.report_call(
            msg, "confirmed" if target == Feedback.CONFIRMED else "failed", now
        )
        # On PostgreSQL the writes are one statement, atomic by itself, and BEGIN and COMMIT
        # would be two more round trips; a conversion writes more and locks its verification.
        one_statement = combined_writes.supported(connection) and not converts
        with contextlib.nullcontext() if one_statement else transaction.atomic():
            if converts:
                # Confirmations of one verification one after the other: the second one then
                # finds its message superseded (PostgreSQL; SQLite writers are serialized).
                Verification.objects.select_for_update().filter(pk=msg.verification_id).exists()
            # Compare-and-set: only if nobody moved the message since we read it. A pending
            # message has made no report yet, so none can be open to supersede.
            if not _write_feedback_change(
                msg, current, updates, event, call, supersede=current != Feedback.PENDING
            ):
                continue
            for field, value in updates.items():
                setattr(msg, field, value)
            # After the commit (at once when the statement committed by itself).
            if call is not None:
                outbox.enqueue_on_commit(call)
            _on_commit_send(
                signals.feedback_changed, message=msg, old=current, new=target, source=source
            )
            if converts:
                _convert_verification(msg, at, now, source, actor)
        changed = True
        break
    if isinstance(message, Message):
        _copy_fields(msg, message)  # the caller's instance shows what is stored now
    return changed


#: The SELECT of ``_read_message`` per (vendor, looked-up fields), built on first use.
_READS: dict[tuple[str, tuple[str, ...]], str] = {}


def _read_message(lookup: dict[str, Any]) -> Message | None:
    """The message ``lookup`` (``_lookup``'s filter: the pk, or provider and provider id) finds.

    The same row and instance ``Message.objects.filter(**lookup)`` gives, but its SQL is built
    once per process: compiling the query was a third of the read's time, and this read is on
    every confirmation. Both lookups are unique, so there is no LIMIT (and no ORDER BY).
    ``raw()`` converts the values and builds the instance exactly as a queryset would.
    """
    alias = router.db_for_read(Message)
    connection = connections[alias]
    meta = Message._meta
    fields = [meta.pk if name == "pk" else meta.get_field(name) for name in lookup]
    key = (connection.vendor, tuple(lookup))
    sql = _READS.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
        where = " AND ".join(f"{quote(field.column)} = %s" for field in fields)
        sql = _READS[key] = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {where}"  # noqa: S608 - names only
    params = [
        field.get_db_prep_value(value, connection)
        for field, value in zip(fields, lookup.values(), strict=True)
    ]
    return next(iter(Message.objects.raw(sql, params, using=alias)), None)


def _write_feedback_change(
    msg: Message,
    current: str,
    updates: dict[str, Any],
    event: MessageEvent,
    call: ProviderCall | None,
    *,
    supersede: bool,
) -> bool:
    """The compare-and-set UPDATE of ``msg`` from ``current``, then (only if it matched) the
    event, the superseding of the reports still open when ``supersede``, and the outbox
    ``call``. True when the UPDATE matched.

    One statement on PostgreSQL (``combined_writes``), where a round trip costs more than the
    ORM's work; the ORM's statements one by one elsewhere.
    """
    connection = connections[router.db_for_write(Message)]
    if combined_writes.supported(connection):
        return combined_writes.change_with_rows(
            connection,
            msg,
            guard={"feedback": current},
            updates=updates,
            rows=[event],
            returning=call,
            also=_supersede_sql(msg, updates["updated_at"], connection)
            if supersede and call is not None
            else None,
        )
    if not Message.objects.filter(pk=msg.pk, feedback=current).update(**updates):
        return False
    event.save(force_insert=True)
    if call is not None:
        if supersede:
            outbox.open_reports(msg.pk).update(
                state=CallState.SUPERSEDED, completed_at=updates["updated_at"]
            )
        call.save(force_insert=True)
    return True


def _supersede_sql(msg: Message, now: datetime, connection: Any) -> tuple[str, list[Any]]:
    """The UPDATE superseding ``outbox.open_reports`` of ``msg`` at ``now``, as SQL."""
    query = outbox.open_reports(msg.pk).query.chain(UpdateQuery)
    query.add_update_values({"state": CallState.SUPERSEDED, "completed_at": now})
    sql, params = query.get_compiler(connection=connection).as_sql()
    return sql, list(params)


#: The states a message leaves for ``superseded`` when another message of its verification is
#: confirmed (``states.TRANSITIONS``).
_SUPERSEDABLE = (Feedback.PENDING, Feedback.EXPIRED)


def _convert_verification(
    msg: Message, at: datetime, now: datetime, source: str, actor: object
) -> None:
    """``msg`` was just confirmed: its verification converts (unless another message already
    converted it) and its other pending or expired messages become ``superseded``.

    Runs in the confirmation's transaction, the verification row locked.
    """
    if not Verification.objects.filter(pk=msg.verification_id, converted_at__isnull=True).update(
        converted_at=at, converting_message=msg.pk
    ):
        return
    # The rollups count the verification at its first message: its hour must be recounted.
    Message.objects.filter(verification_id=msg.verification_id, resend=False).exclude(
        pk=msg.pk
    ).update(updated_at=now)
    others = Message.objects.filter(
        verification_id=msg.verification_id, feedback__in=_SUPERSEDABLE
    ).exclude(pk=msg.pk)
    for other in others:
        # Compare-and-set again: the expiry sweep does not take the verification's lock.
        while other.feedback in _SUPERSEDABLE:
            old = other.feedback
            if Message.objects.filter(pk=other.pk, feedback=old).update(
                feedback=Feedback.SUPERSEDED, updated_at=now
            ):
                break
            other.refresh_from_db(fields=["feedback"])
        else:
            continue
        other.feedback, other.updated_at = Feedback.SUPERSEDED, now
        MessageEvent.objects.create(
            message_id=other.pk,
            kind=EventKind.FEEDBACK,
            from_value=old,
            to_value=Feedback.SUPERSEDED,
            source=source,
            actor=actor_name(actor),
            created_at=max(at, other.sent_at),
            detail={"by": str(msg.pk)},
        )
        outbox.report_superseded(other, now)
        _on_commit_send(
            signals.feedback_changed,
            message=other,
            old=old,
            new=Feedback.SUPERSEDED,
            source=source,
        )


def _copy_fields(source: Message, target: Message) -> None:
    for field in Message._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))


def confirm(
    message: MessageRef | None = None,
    *,
    provider: str | None = None,
    provider_message_id: str | None = None,
    at: datetime | None = None,
    source: str = Source.PYTHON,
    actor: object = None,
    fresh: bool = False,
) -> bool:
    """Record a conversion. True when this call confirmed the message; False if it already was.

    ``fresh=True``: ``message`` is a Message the caller read from the database just now (the
    API's view did, through its queryset), so its state stands for the read this call would
    make; the compare-and-set still checks it, and reads again if it no longer holds.
    """
    return _change_feedback(
        Feedback.CONFIRMED,
        message,
        provider=provider,
        provider_message_id=provider_message_id,
        at=at,
        source=source,
        actor=actor,
        fresh=fresh,
    )


def fail(
    message: MessageRef | None = None,
    *,
    provider: str | None = None,
    provider_message_id: str | None = None,
    at: datetime | None = None,
    source: str = Source.PYTHON,
    actor: object = None,
    fresh: bool = False,
) -> bool:
    """Record that the recipient did not use the message. True when this call made the change.

    ``fresh``: as for ``confirm``.
    """
    return _change_feedback(
        Feedback.FAILED,
        message,
        provider=provider,
        provider_message_id=provider_message_id,
        at=at,
        source=source,
        actor=actor,
        fresh=fresh,
    )


def record_delivery(
    message: MessageRef | None = None,
    status: str = "",
    *,
    provider: str | None = None,
    provider_message_id: str | None = None,
    provider_status: str = "",
    at: datetime | None = None,
    source: str = Source.WEBHOOK,
    detail: dict[str, Any] | None = None,
    supersedes: Collection[str] = (),
) -> bool:
    """Apply a delivery status if it ranks above the current one. True when it changed.

    ``supersedes`` names raw provider statuses this update refines at the same delivery status
    (AWS's ``TEXT_DELIVERED`` after ``TEXT_SUCCESSFUL``): when the message is in ``status`` with
    one of them, it takes ``provider_status`` and a ``provider`` event keeps ``detail``. That
    returns False too: the delivery status did not change.
    """
    if status not in DELIVERY_RANK:
        raise field_error("status", _("Unknown delivery status %(value)r.") % {"value": status})
    _check_source(source)
    at = _aware(at, "at")
    msg = get_message(message, provider=provider, provider_message_id=provider_message_id)
    # First from the message as it was read (a webhook has just read it), which saves reading it
    # again when that settles the matter: delivery statuses only rise, so a status at or above
    # ``status`` leaves nothing to apply (unless it may be refined, which needs the stored
    # provider status), and one below is taken up by the compare-and-set UPDATE, which fails
    # if the row moved since, and then the loop reads it.
    known: tuple[str, str] | None = (msg.delivery_status, msg.provider_status)
    if DELIVERY_RANK.get(known[0], 0) == DELIVERY_RANK[status] and supersedes:
        known = None
    while True:
        with transaction.atomic():
            row = known or (
                Message.objects.filter(pk=msg.pk)
                .values_list("delivery_status", "provider_status")
                .first()
            )
            known = None
            if row is None:
                raise Message.DoesNotExist
            current, current_provider_status = row
            if DELIVERY_RANK[current] >= DELIVERY_RANK[status]:
                if (
                    current == status
                    and current_provider_status in supersedes
                    and provider_status[:64] != current_provider_status
                    # Compare-and-set on the provider status: a concurrent refinement wins once.
                    and not _refine_provider_status(
                        msg, current, current_provider_status, provider_status, at, source, detail
                    )
                ):
                    continue
                return False
            updates: dict[str, Any] = {
                "delivery_status": status,
                "provider_status": provider_status[:64],
                "updated_at": timezone.now(),
            }
            if status == Delivery.DELIVERED:
                updates["delivered_at"] = at
            if not Message.objects.filter(pk=msg.pk, delivery_status=current).update(**updates):
                continue
            MessageEvent.objects.create(
                message_id=msg.pk,
                kind=EventKind.DELIVERY,
                from_value=current,
                to_value=status,
                source=source,
                created_at=at,
                detail={"provider_status": provider_status, **(detail or {})},
            )
            # Receivers (sent when this block commits) see the message as it now is.
            for field, value in updates.items():
                setattr(msg, field, value)
            _on_commit_send(
                signals.delivery_changed, message=msg, old=current, new=status, source=source
            )
            return True


def _refine_provider_status(
    msg: Message,
    status: str,
    old: str,
    new: str,
    at: datetime,
    source: str,
    detail: dict[str, Any] | None,
) -> bool:
    """Record a provider status that refines ``old`` at the same delivery status; False if the
    message moved meanwhile."""
    now = timezone.now()
    if not Message.objects.filter(pk=msg.pk, delivery_status=status, provider_status=old).update(
        provider_status=new[:64], updated_at=now
    ):
        return False
    MessageEvent.objects.create(
        message_id=msg.pk,
        kind=EventKind.PROVIDER,
        from_value=old,
        to_value=new[:64],
        source=source,
        created_at=at,
        detail={"provider_status": new, **(detail or {})},
    )
    msg.provider_status, msg.updated_at = new[:64], now
    return True


def expire_overdue(
    now: datetime | None = None, *, progress: Callable[[int], None] | None = None
) -> int:
    """Move every pending message past its deadline to ``expired``; returns how many.

    Set-based: each batch is a few statements whatever its size. Providers that take a
    ``failed`` report (AWS recommends setting FAILED yourself) get one through the outbox.
    ``progress(expired_so_far)`` is called after each committed batch (``feedback_expire``).
    """
    now = _aware(now, "now")
    total = 0
    while True:
        with transaction.atomic():
            count, call_ids, message_ids = expire_batch(now)
            # The enqueue first, and both robust: whatever a signal receiver does, the calls
            # are handed to the queue and the next batch runs.
            if call_ids:
                transaction.on_commit(lambda ids=call_ids: outbox.enqueue(ids), robust=True)
            if message_ids:
                transaction.on_commit(
                    lambda ids=message_ids: _send_expired_signals(ids), robust=True
                )
        total += count
        if progress is not None:
            progress(total)
        if count < app_settings.EXPIRE_BATCH:
            return total


def _send_expired_signals(message_ids: list[uuid.UUID]) -> None:
    for message in Message.objects.filter(pk__in=message_ids).iterator():
        _send_robust(
            signals.feedback_changed,
            message=message,
            old=Feedback.PENDING,
            new=Feedback.EXPIRED,
            source=Source.SWEEP,
        )


__all__: list[str] = [
    "confirm",
    "expire_overdue",
    "fail",
    "get_message",
    "record_delivery",
    "send",
    "track",
]
