-- Entry 8's ciphertext copied over entry 7's.
UPDATE fedgov_entries SET ciphertext = (SELECT ciphertext FROM fedgov_entries WHERE seq = 8) WHERE seq = 7;
