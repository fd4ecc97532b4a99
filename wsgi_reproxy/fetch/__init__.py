"""Stage 3, per reproxy: a URL list -> one streaming upstream response.

Takes the target URLs the app named and the request's settings; gives the
first target that answered acceptably as an
:class:`~wsgi_reproxy.fetch.body.Upstream` whose body streams without
buffering, or the list of :class:`~wsgi_reproxy.UpstreamError` failures::

    targets     input limits and the allow-list check, per URL and redirect
    fetcher     redirects, failover, the expected-size check, TOTAL deadline
    exchange    one request on a pooled urllib3 connection; stale retry
    head        the response head read strictly: 1xx, headers, framing
    wire        socket reads and the body read to exactly its end
    body        the streaming body and its connection's return to the pool
    pool        the process-wide pool, bounded per host, rebuilt after fork
    idle        the check of an idle connection before reuse: one poll(0)
    boundary    urllib3 exceptions -> UpstreamError, in one place
    poolstats   open and idle connections per host, for the metrics
    metrics     the Metrics protocol (one call per event) and its no-op
"""
