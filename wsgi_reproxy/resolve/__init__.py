"""Stage 2, per request: a WSGI environ -> its :class:`~wsgi_reproxy.Settings`.

Takes the parsed records of :mod:`wsgi_reproxy.config` once (indexing the
sections) and, per request, gives the merged settings in Apache's order:
``<Directory>`` shortest first, ``<DirectoryMatch>``, ``<Files>``,
``<Location>``, virtual host after main server::

    resolver    Config: load_config / parse_config / resolve / explain
    match       the section index and the per-request match
    vhosts      choosing the <VirtualHost> from Host
    paths       the URL path as httpd cleans it up
    aliases     URL path -> filesystem path: Alias family, UserDir, DocumentRoot
    reach       which <Directory> sections no mapping reaches (check)
"""
