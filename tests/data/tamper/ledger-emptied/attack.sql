-- Every entry, checkpoint and cached tree node deleted.
DELETE FROM fedgov_checkpoints;
DELETE FROM fedgov_entries;
DELETE FROM fedgov_tree_nodes;
