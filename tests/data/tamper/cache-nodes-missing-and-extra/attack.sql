-- The level-5 cached node deleted, and a node no tree of 37 leaves has inserted.
DELETE FROM fedgov_tree_nodes WHERE level = 5;
INSERT INTO fedgov_tree_nodes (level, idx, hash) VALUES (4, 9, zeroblob(32));
