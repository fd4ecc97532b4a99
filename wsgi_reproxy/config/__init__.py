"""Stage 1, load time: Apache-syntax text -> frozen records with ``file:line``.

Takes a config file (or a string) in httpd 2.4 syntax and gives a
:class:`~wsgi_reproxy.config.records.ParsedConfig`: server defaults, sections
and virtual hosts, each carrying typed
:class:`~wsgi_reproxy.config.settings.Overrides` and where they were written.
Every pattern (``ReproxyAllowTargets``, section globs and regexes) is checked
here, so a bad line is a :class:`~wsgi_reproxy.ConfigError` before any
request::

    lexer       physical lines -> logical lines and words (quoting, ``\\``)
    conditions  Define, ``${VAR}``, <IfDefine>, <IfModule>
    includes    Include / IncludeOptional: globs, cycles, depth
    sections    section tags and their contexts
    directives  our directives -> typed values
    dialects    mod_xsendfile's and nginx's offload directives, HEAD, URL length
    aliases     Alias, ScriptAlias, WSGIScriptAlias (and Match), UserDir
    suggest     "did you mean AllowReproxy?" for ignored near-misses
    reader      the block reader tying the above together (parse_text/_file)
    records     the frozen output records
    settings    Settings (per request) and Overrides (per context), merge
    patterns    Apache wildcard and regex matching
    urls        the strict URL parser shared with the allow-list check
    allowlist   ReproxyAllowTargets syntax -> TargetPattern
    headernames header-name rules shared with the responders
    hosts       host[:port] splitting shared with the resolver

Nothing here imports a later stage.
"""
