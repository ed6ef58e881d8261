-- Checkpoint #2's tree size (13) spelled with a superscript digit, which int() would accept.
UPDATE fedgov_checkpoints SET note = replace(note, char(10) || '13' || char(10), char(10) || '1³' || char(10)) WHERE id = 2;
