"""The platform inbox: notifications stored for parties, read by every member of the party.

This is the surface other domains may use (``notify`` inside the transaction of the change it
reports); they never import this package's models or tables.
"""

from datafactor.inbox.services import (
    Note,
    Notification,
    list_messages,
    mark_all_read,
    mark_read,
    notify,
    notify_all,
    unread_count,
)

__all__ = [
    "Note",
    "Notification",
    "list_messages",
    "mark_all_read",
    "mark_read",
    "notify",
    "notify_all",
    "unread_count",
]
