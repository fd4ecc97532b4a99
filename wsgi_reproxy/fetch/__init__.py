"""Stage 3, per reproxy: a URL list -> one streaming upstream response.

Takes the target URLs the app named and the request's settings; gives the
first target that answered acceptably as an
:class:`~wsgi_reproxy.fetch.body.Upstream` whose body streams without
buffering, or the list of :class:`~wsgi_reproxy.UpstreamError` failures::

    targets     input limits and the allow-list check, per URL and redirect
    fetcher     redirects, failover, the expected-size check
    body        the streaming body and its connection's return to the pool
    pool        the process-wide connection pool, rebuilt after fork
    boundary    urllib3 exceptions -> UpstreamError, in one place
    metrics     the Metrics protocol (one call per event) and its no-op
"""
