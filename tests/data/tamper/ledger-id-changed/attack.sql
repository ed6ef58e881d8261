-- The meta table's ledger_id changed; the origin it implies left as it was.
UPDATE fedgov_meta SET value = '00000000-0000-4000-8000-000000000000' WHERE key = 'ledger_id';
