"""The programs that run inside exec-session workers (one per runtime). They are started by
path, never imported by the proxy; see `addon.sessions` for the frame protocol."""
