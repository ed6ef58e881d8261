-- The cached tree node at level 4, index 1 (leaves 16..31) zeroed.
UPDATE fedgov_tree_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 1;
