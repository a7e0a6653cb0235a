"""One turn end to end and what runs it: the chat engine (chat), the input guard (guard), pruning while sampling
(pruning), the engines a config names and the flows they serve (engines), a session's history (history), and
who may start a turn (admission, ratelimit). No gradio here."""
