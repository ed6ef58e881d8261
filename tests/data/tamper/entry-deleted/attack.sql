-- Entry 5 removed from the middle of the ledger.
DELETE FROM fedgov_entries WHERE seq = 5;
