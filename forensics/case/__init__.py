"""The case database: connecting, its schema, SQL macros, fingerprints, costs, reconciliation and
verification.
"""
