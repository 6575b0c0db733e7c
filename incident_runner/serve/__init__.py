"""``incident-runner serve``: alerts in (Alertmanager webhook, generic JSON), incidents out.

An alert is committed to the intake (SQLite in the state dir) before it is
answered 202; bounded workers run each incident as a ``remediate`` subprocess.
"""
