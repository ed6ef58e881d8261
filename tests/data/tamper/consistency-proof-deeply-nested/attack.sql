-- Checkpoint #2's consistency proof replaced by 200000 opening brackets.
UPDATE fedgov_checkpoints SET consistency_proof = replace(hex(zeroblob(100000)), '0', '[') WHERE id = 2;
