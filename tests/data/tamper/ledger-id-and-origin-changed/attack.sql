-- The meta table's ledger_id and origin both changed, consistently with each other.
UPDATE fedgov_meta SET value = '00000000-0000-4000-8000-000000000000' WHERE key = 'ledger_id';
UPDATE fedgov_meta SET value = 'fedgov.ledger/00000000-0000-4000-8000-000000000000' WHERE key = 'origin';
