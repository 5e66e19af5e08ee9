"""Quota replay: a rate-limit policy (policy.py) tried on the case's own traffic (replay.py),
and what it would have done to the principals with findings and to those without
(verdict.py)."""
