"""HTTP beside OSC: health, metrics, status, styles, OSCQuery and file downloads (docs/http-api.md).

Cheat-sheet::

    from ai_band.http.server import HttpServer, Sources
    server = HttpServer("127.0.0.1", 9101, Sources(name=..., status=api.status, styles=..., osc_port=...,
                                                   specs=SPECS, probes={"playback": probe}))
    port = await server.start()        # imports aiohttp in a thread; raises HttpError if it cannot bind
    await server.stop()                # idempotent

    from ai_band.http.oscquery import build_tree, host_info   # pure: the OSCQuery JSON of the OSC API
    from ai_band.http.access import check, rules_from_config  # pure: allow-list and bearer token

Importing this package loads nothing heavy; aiohttp and prometheus_client are
imported by :meth:`HttpServer.start` only, i.e. only when ``[http] enabled``.
"""
