"""Stage 4, per response: what answers a trigger header, and with which headers.

Takes the app's held-back response (status and headers, body discarded) and
the request's settings; gives the status, the client's headers and the body
iterable::

    headers     what the target is sent and what the client gets back
    url         X-Reproxy-Url: fetch the first good target, else 502/504
    pace        read a body no faster than the client's socket takes it
    transfer    one reproxy's outcome: its log line, fields and metrics
    file        X-Reproxy-File: a local file below ReproxyFileRoot
    cache       X-Reproxy-Cache-For: remember URL lists, skip the app
    dispatch    which trigger answers: perlbal's, X-Sendfile, X-Accel-Redirect
    accel       X-Accel-Redirect paths -> a file or URL, X-Accel-Charset
    refusal     a trigger nothing may act on: 502 and a rate-limited warning
"""
