-- Checkpoints #3 and #4 deleted, every entry kept.
DELETE FROM fedgov_checkpoints WHERE id > 2;
