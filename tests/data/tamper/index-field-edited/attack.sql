-- A plaintext index field of entry 2 edited; its leaf hash left as it was.
UPDATE fedgov_entries SET node_id = 'n999' WHERE seq = 2;
