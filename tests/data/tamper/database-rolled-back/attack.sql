-- The database alone rolled back to round 2 (size 25); the workspace's signed head still says 37.
DELETE FROM fedgov_checkpoints WHERE tree_size > 25;
DELETE FROM fedgov_entries WHERE seq >= 25;
DELETE FROM fedgov_tree_nodes WHERE (idx + 1) * (1 << level) > 25;
