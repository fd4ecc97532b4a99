"""Target URLs as they may be logged: the query redacted (SPEC §5).

Presigned URLs (S3, GCS, MogileFS tokens) carry their credentials in the
query string, so a log line shows ``?…`` in its place::

    redact_query("http://s3/b/k?X-Amz-Signature=abc")  # 'http://s3/b/k?…'

``ReproxyLogQuery On`` (another change) will turn this off per context; until
then every log line and record field uses :func:`redact_query`.
"""

from __future__ import annotations

#: What stands for a removed query string.
REDACTED_QUERY = "?…"


def redact_query(url: str) -> str:
    """*url* with everything from its first ``?`` replaced by ``?…``.

    A fragment without a query is dropped too (it is never sent; SPEC §4.7);
    a URL without either comes back unchanged, at the cost of one search.
    """
    cut = url.find("?")
    if cut >= 0:
        return url[:cut] + REDACTED_QUERY
    cut = url.find("#")
    return url if cut < 0 else url[:cut]
