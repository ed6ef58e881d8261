"""The compliance report of one run: what the ledger holds about it, as one self-contained HTML page.

Three steps, each its own module, so the middle two can be tested without a database or a browser:

- `source.read_run` reads what the report needs from an open ledger (payloads decrypted, the
  verifier run, checkpoints listed) into plain `LedgerFacts`: the only step that touches I/O;
- `model.build_report` turns those facts into `Report`, the report's data (pure);
- `html.render_html` turns a `Report` into the page (pure), with charts drawn by `svg`.

Nothing here imports Flower. Every string that comes from the ledger is escaped where it is
written into the page: node-supplied text (teams, reasons, metric names) is hostile.
"""
