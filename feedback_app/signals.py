"""Signals of feedback_app. Each is sent after the transaction that caused it commits."""

from django.dispatch import Signal

#: A message was tracked or sent. Provides: message.
message_tracked = Signal()

#: A message's feedback state changed. Provides: message, old, new, source.
feedback_changed = Signal()

#: A message's delivery status changed. Provides: message, old, new, source.
delivery_changed = Signal()
