"""Stage 6, processes: the command line and the servers it starts.

Takes the command line; gives ``check`` and ``explain`` reports, a gunicorn
server running the wrapped app (``serve``), or the self-contained demo::

    cli         check / explain
    serve       serve / demo commands, gunicorn options
    gunicorn    the gunicorn Application embedding
    metricsbind serve --metrics-bind: /metrics from the gunicorn master
    summary     the effective-config line serve prints at startup
    defaults    serve's gunicorn defaults: gevent, open files, warnings
    sendtimeout a client that stops reading is cut after a send timeout
    demo        storage node + Flask app + gunicorn on loopback
    storage     the loopback storage node the demo and tests use
"""
