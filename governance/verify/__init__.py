"""The verifier on its own: all an auditor reads to trust a fedgov ledger or evidence bundle.

Standard library and `cryptography` only (a test holds it to that), and no writer code: the
writer imports its encoders from here, so what is written and what is checked cannot drift.
Reading order: canonical, leaf, merkle, checkpoint, rows, inputs, bundle, bundle_check,
cosignature, bundle_cosigned, __main__ (`python -m governance.verify BUNDLE`); selection redoes a draw.
"""
