"""The HTTP surface of proxy-hooks: routes, envelopes, ETag rules. The domain lives in `addon`."""
