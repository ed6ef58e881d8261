"""fedgov governance: ledger, consent, lineage, keys and verification.

A library with no Flower import, so that a compliance officer's tools can use it alone.
"""
