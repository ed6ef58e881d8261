-- Checkpoint #2's tree size replaced by 5000 nines.
UPDATE fedgov_checkpoints
SET note = replace(note, char(10) || '13' || char(10), char(10) || replace(hex(zeroblob(2500)), '0', '9') || char(10))
WHERE id = 2;
