-- Entry 7's round set to 2^60, beyond the +-(2^53-1) that RFC 8785 JSON can carry.
UPDATE fedgov_entries SET round = 1152921504606846976 WHERE seq = 7;
