"""Signals of feedback_app. Each is sent after the transaction that caused it commits."""

from django.dispatch import Signal

#: A message was tracked or sent. Provides: message.
message_tracked = Signal()

#: A message's feedback state changed. Provides: message, old, new, source.
feedback_changed = Signal()

#: A message's delivery status changed. Provides: message, old, new, source.
delivery_changed = Signal()

#: The guard blocked a prefix or country (automatically or by hand). Provides: block (a
#: GuardBlock: kind, value, reason, detail with the numbers, since, until).
guard_blocked = Signal()

#: A block was lifted before its end. Provides: block, actor (who lifted it, a string).
guard_unblocked = Signal()
