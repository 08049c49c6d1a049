-- The unfinished events in arrival order. The claim walks it oldest first and stops once it
-- has enough heads, so a claim costs the due heads it takes (plus the in-flight and backed-up
-- events ahead of them), not one pass over every open event; partial, so the done rows that
-- make up most of the table are not in it.
CREATE INDEX events_open ON events (id) WHERE status IN ('pending', 'leased');
