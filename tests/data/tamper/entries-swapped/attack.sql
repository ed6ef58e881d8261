-- Entries 3 and 4 trade places.
UPDATE fedgov_entries SET seq = -1 WHERE seq = 3;
UPDATE fedgov_entries SET seq = 3 WHERE seq = 4;
UPDATE fedgov_entries SET seq = 4 WHERE seq = -1;
