"""``GET /metrics``: the ``/band/status`` counters in Prometheus' text format.

A custom collector (prometheus_client's "custom collectors" pattern) reads
``status()`` (:meth:`ai_band.osc.api.BandApi.status`) at scrape time: the
daemon keeps no second set of counters, and nothing is registered in
prometheus_client's global registry (each server has its own
:class:`~prometheus_client.CollectorRegistry`, so two servers in one process,
as in the tests, do not collide).

Families (all prefixed ``ai_band_``), each with where it comes from:

* ``build_info{name,version}`` (info): ``name``, ``version``.
* ``uptime_seconds``, ``clients`` (gauges): ``uptime_s``, ``len(clients)``.
* ``osc_events_total{event}``: ``counters`` (packets, messages, errors by code, ...).
* ``transport_playing``, ``transport_bpm`` (gauges), ``transport_events_total{event}``:
  ``transport`` (starts, stops, relocations, ...).
* ``playback_groups_sent_total``, ``playback_notes_on_total``,
  ``playback_late_dropped_notes_total``, ``playback_retimed_groups_total``: ``playback``.
* ``playback_late_groups_total{bound_ms}``: ``playback.late_over_ms``, note
  groups later than 0.5, 1, 2, 5 ms; ``playback_max_late_ms`` (gauge).
* ``output_xruns_total``, ``output_late_messages_total``, ``output_late_on_arrival_total``,
  ``output_skipped_periods_total``,
  ``output_held_periods_total``, ``output_dropped_messages_total``: ``playback.output``;
  ``output_server_gone`` (gauge): 1 once the JACK server dropped the client.
* ``recent_jobs{state}`` (gauge): ``jobs``, the last 20 as ``/band/status`` lists them.
* With ``list_jobs`` (:class:`JobsCollector`): ``jobs{state}`` (gauge, every job
  the daemon holds, by state: ``jobs{state="queued"}`` is the queue depth) and
  ``render_speed_realtime{stat}`` (gauge): music seconds rendered per second of
  rendering (``job.json`` ``audio.realtime_ratio``) of the ``last`` done audio
  job, and the ``min`` and ``median`` over the done audio jobs held.
* ``jobs_active`` (gauge), with ``jobs_active``: jobs queued, generating or rendering.
* With the event hub (:class:`EventStreamCollector`): ``http_event_streams``
  (gauge, ``/api/events`` streams open) and ``http_event_streams_events_total{event}``
  (opened, refused, dropped_slow, events, sent).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PREFIX = "ai_band_"

#: ``status()["playback"]`` integer counters -> metric name (without prefix, before ``_total``).
PLAYBACK_COUNTERS = {
    "groups_sent": "playback_groups_sent",
    "notes_on": "playback_notes_on",
    "late_dropped": "playback_late_dropped_notes",
    "retimed_groups": "playback_retimed_groups",
}

#: ``status()["playback"]["output"]`` integer counters -> metric name (without prefix, before ``_total``).
OUTPUT_COUNTERS = {
    "xruns": "output_xruns",
    "late_messages": "output_late_messages",
    "late_on_arrival": "output_late_on_arrival",
    "skipped_periods": "output_skipped_periods",
    "held_periods": "output_held_periods",
    "dropped_messages": "output_dropped_messages",
}

#: The job states (:data:`ai_band.jobs.manager.STATES`), always exported (0 when none).
JOB_STATES = ("queued", "generating", "rendering", "done", "failed", "cancelled", "interrupted")


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class StatusCollector(Collector):
    """Turns one ``status()`` dict into metric families at each scrape.

    Args:
        status: returns the ``/band/status`` dict; called once per scrape, on the event loop.
        jobs_active: returns how many jobs are not finished (queue depth), or None to leave it out.
    """

    def __init__(self, status: Callable[[], dict], jobs_active: Callable[[], int] | None = None) -> None:
        self._status = status
        self._jobs_active = jobs_active

    def collect(self) -> Iterator[Metric]:
        """Yield the families listed in the module docstring; a missing section is skipped, never an error."""
        s = self._status()
        info = InfoMetricFamily(PREFIX + "build", "ai-band instance name and version")
        info.add_metric([], {"name": str(s.get("name", "")), "version": str(s.get("version", ""))})
        yield info
        yield GaugeMetricFamily(PREFIX + "uptime_seconds", "Seconds since the daemon started",
                                value=float(s.get("uptime_s", 0.0)))
        yield GaugeMetricFamily(PREFIX + "clients", "OSC clients registered with /band/hello",
                                value=len(s.get("clients", ())))

        events = CounterMetricFamily(PREFIX + "osc_events", "OSC counters of /band/status (counters)",
                                     labels=["event"])
        for name, value in sorted(s.get("counters", {}).items()):
            if _is_count(value):
                events.add_metric([name], float(value))
        yield events

        transport = s.get("transport", {})
        if transport:
            yield GaugeMetricFamily(PREFIX + "transport_playing", "1 while the host transport plays",
                                    value=1.0 if transport.get("playing") else 0.0)
            yield GaugeMetricFamily(PREFIX + "transport_bpm", "Host tempo, quarter notes per minute",
                                    value=float(transport.get("bpm", 0.0)))
            tevents = CounterMetricFamily(PREFIX + "transport_events", "Transport model counters",
                                          labels=["event"])
            for name in ("messages", "starts", "stops", "relocations", "tempo_changes", "stragglers"):
                if _is_count(transport.get(name)):
                    tevents.add_metric([name], float(transport[name]))
            yield tevents

        playback = s.get("playback", {})
        for key, name in PLAYBACK_COUNTERS.items():
            if _is_count(playback.get(key)):
                yield CounterMetricFamily(PREFIX + name, f"Playback thread: {key}", value=float(playback[key]))
        late = CounterMetricFamily(PREFIX + "playback_late_groups",
                                   "Note groups sent later than bound_ms after their deadline",
                                   labels=["bound_ms"])
        for bound, count in playback.get("late_over_ms", {}).items():
            late.add_metric([str(bound)], float(count))
        yield late
        if _is_count(playback.get("max_late_ms")):
            yield GaugeMetricFamily(PREFIX + "playback_max_late_ms", "Latest note group since start, ms",
                                    value=float(playback["max_late_ms"]))
        output = playback.get("output", {})
        for key, name in OUTPUT_COUNTERS.items():
            if _is_count(output.get(key)):
                yield CounterMetricFamily(PREFIX + name, f"MIDI output: {key}", value=float(output[key]))
        if "server_gone" in output:
            yield GaugeMetricFamily(PREFIX + "output_server_gone", "1 once the JACK server dropped the client",
                                    value=0.0 if output["server_gone"] is None else 1.0)

        states = Counter(job.get("state") for job in s.get("jobs", ()))
        recent = GaugeMetricFamily(PREFIX + "recent_jobs", "The last 20 jobs by state", labels=["state"])
        for state in JOB_STATES:
            recent.add_metric([state], float(states.get(state, 0)))
        yield recent
        if self._jobs_active is not None:
            yield GaugeMetricFamily(PREFIX + "jobs_active", "Jobs queued, generating or rendering",
                                    value=float(self._jobs_active()))


class EventStreamCollector(Collector):
    """The ``/api/events`` streams: open now, and the hub's counters.

    Args:
        counters: :attr:`ai_band.http.events.EventHub.counters` (read at each scrape).
        open_streams: returns the streams open now.
    """

    def __init__(self, counters: Mapping[str, int], open_streams: Callable[[], int]) -> None:
        self._counters = counters
        self._open_streams = open_streams

    def collect(self) -> Iterator[Metric]:
        """``http_event_streams`` (gauge) and ``http_event_streams_events_total{event}``."""
        yield GaugeMetricFamily(PREFIX + "http_event_streams", "Open /api/events streams (WebSocket and SSE)",
                                value=float(self._open_streams()))
        events = CounterMetricFamily(PREFIX + "http_event_streams_events",
                                     "/api/events: streams opened, refused (over [http] max_websockets), "
                                     "dropped_slow (queue overflowed), job events seen, messages sent",
                                     labels=["event"])
        for name in ("opened", "refused", "dropped_slow", "events", "sent"):
            events.add_metric([name], float(self._counters.get(name, 0)))
        yield events


class JobsCollector(Collector):
    """Every job the daemon holds, by state, and the render speed of the audio jobs.

    Args:
        list_jobs: returns the jobs (objects with ``state``, ``audio``, ``finished_s``);
            may raise :class:`~ai_band.errors.BandError` when the job store is closed (then nothing is exported).
    """

    def __init__(self, list_jobs: Callable[[], Any]) -> None:
        self._list_jobs = list_jobs

    def collect(self) -> Iterator[Metric]:
        """``jobs{state}`` and ``render_speed_realtime{stat}`` (module docstring)."""
        from ai_band.errors import BandError

        try:
            jobs = list(self._list_jobs())
        except BandError:
            return
        states = Counter(job.state for job in jobs)
        by_state = GaugeMetricFamily(PREFIX + "jobs", "Jobs the daemon holds, by state (queued = queue depth)",
                                     labels=["state"])
        for state in JOB_STATES:
            by_state.add_metric([state], float(states.get(state, 0)))
        yield by_state
        rendered = sorted(((job.finished_s or 0.0, float(job.audio["realtime_ratio"])) for job in jobs
                           if job.state == "done" and job.audio and _is_count(job.audio.get("realtime_ratio"))))
        speed = GaugeMetricFamily(PREFIX + "render_speed_realtime",
                                  "Audio rendering speed, x real time (music s per s): last, min, median of the "
                                  "done audio jobs", labels=["stat"])
        if rendered:
            ratios = sorted(ratio for _, ratio in rendered)
            speed.add_metric(["last"], rendered[-1][1])
            speed.add_metric(["min"], ratios[0])
            speed.add_metric(["median"], ratios[len(ratios) // 2] if len(ratios) % 2 else
                             (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2)
        yield speed


def make_registry(status: Callable[[], dict], jobs_active: Callable[[], int] | None = None,
                  stream_counters: Mapping[str, int] | None = None,
                  open_streams: Callable[[], int] | None = None,
                  list_jobs: Callable[[], Any] | None = None) -> CollectorRegistry:
    """A registry of its own holding :class:`StatusCollector` (no process or platform collectors).

    With ``stream_counters`` and ``open_streams``, :class:`EventStreamCollector` too;
    with ``list_jobs``, :class:`JobsCollector`.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status, jobs_active))
    if list_jobs is not None:
        registry.register(JobsCollector(list_jobs))
    if stream_counters is not None and open_streams is not None:
        registry.register(EventStreamCollector(stream_counters, open_streams))
    return registry
