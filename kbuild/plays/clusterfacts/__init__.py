"""Facts about the running cluster, one small unit each (pyinfra-style): the command that reads it, the parser
of its output and the typed result. Plays gather them through the engine session (Session.read/gather), so
events and unreachable handling apply; tests feed recorded output to the parsers."""
