-- One byte of entry 4's ciphertext changed (byte 21: 0x00, or 0x01 where it was 0x00).
UPDATE fedgov_entries
SET ciphertext = CAST(substr(ciphertext, 1, 20)
                      || CASE WHEN substr(ciphertext, 21, 1) = X'00' THEN X'01' ELSE X'00' END
                      || substr(ciphertext, 22) AS BLOB)
WHERE seq = 4;
