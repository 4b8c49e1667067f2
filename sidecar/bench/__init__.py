"""xks-bench: an open-loop load tool that calls an XKS proxy the way KMS does.

KMS allows one external key store 1,800 requests per second by default and
fails any call the proxy does not answer within 250 ms (spec, Encrypt, "KMS
Considerations"). Before an operator registers a proxy with KMS, this tool
checks that it holds that load: it signs every request with SigV4 (spec,
Appendix A) over keep-alive (m)TLS connections, sends on a fixed timetable
whatever the server does, and reports latency percentiles, outcomes by
``errorName`` and a verdict. docs/load-tool.md is the operator's guide.

Modules, in the order a run meets them:

=============== ============================================================
``settings``    options from the command line, a TOML file and the environment
``tls``         the client ``ssl.SSLContext`` (TLS 1.2+, CA, client cert, SNI)
``signer``      a SigV4 signer that reuses its signing key and prefixes
``payloads``    request bodies (Encrypt, Decrypt, ...) built before the run
``mix``         the request mix and the order it is sent in
``wire``        a prepared request signed into the bytes of one HTTP request
``connection``  one keep-alive HTTP/1.1 connection (httptools parses replies)
``slot``        a connection that reconnects, sending one request at a time
``checks``      is a 200 answer one KMS would accept?
``outcome``     a response classified as ok, an ``errorName``, or worse
``histogram``   latency percentiles with a stated precision
``recorder``    counts and histograms of one phase of a run
``scheduler``   the open-loop timetable, connection workers and the cap
``warmup``      the Encrypts whose ciphertexts the run then decrypts
``runner``      one benchmark from start to report
``verdict``     the checks and PASS / FAIL / INCONCLUSIVE
``report``      the report as a dictionary (and JSON); ``report_text``: as text
``progress``    one status line a second on stderr
``cli``         ``xks-bench`` / ``python -m sidecar.bench``
=============== ============================================================
"""
