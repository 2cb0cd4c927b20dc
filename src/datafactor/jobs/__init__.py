"""Background jobs shared by the domains that run work outside a request: discovery's scans and
de-identifications, and the census's runs.

Every such job walks the same state machine (queued → running → succeeded | failed | cancelled),
with the same owner and timeout for each non-final state, and is run by a thread per server
process that claims the oldest queued job atomically and beats its heart while it works. This
package holds that machinery once; each domain keeps what is its own — what a job does, what it
stores when it ends, its audit tags and the words of its messages.

* ``state``   the rules, pure Python (no ORM): statuses, timeouts, what the sweep does to a job
              that overstayed a state, why a runner stops a job.
* ``store``   the rules applied to rows: claim, ownership check, heartbeat, sweep, release,
              cancel and force-cancel, generic over any table with the standard job columns.
* ``runner``  the runner thread: its loop, the heartbeat thread beside the work, shutdown.

The package ``__init__`` imports nothing, so a domain's pure rules can use ``state`` without
bringing the ORM along.
"""
