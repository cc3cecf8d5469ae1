"""The ``osc`` source: the plugin's ``/band/transport`` (JUCE ``AudioPlayHead::PositionInfo``) through :class:`TransportModel`."""

from __future__ import annotations

import logging

from ai_band.sync.source import SyncContext, SyncSource
from ai_band.transport import TransportModel, TransportSnapshot, TransportState

__all__ = ["OscSource"]

log = logging.getLogger(__name__)


class OscSource(SyncSource):
    """Follows ``/band/transport`` messages (the default source).

    Args:
        context: the shared :class:`SyncContext`.
        window_s: the clock model's sample window, seconds (``[transport] window_s``).
        relocate_threshold_s: a position this far off the prediction is a relocation, seconds.
        timeout_s: playing with no message for this long stops the band, seconds
            (``[transport] timeout_ms``: a plugin that vanished must not leave it playing).
    """

    name = "osc"

    def __init__(self, context: SyncContext, window_s: float = 6.0, relocate_threshold_s: float = 0.04,
                 timeout_s: float = 1.0) -> None:
        super().__init__(context)
        self.model = TransportModel(window_s=window_s, relocate_threshold_s=relocate_threshold_s)
        self.timeout_s = timeout_s

    def feed(self, arrival_s: float, state: TransportState) -> tuple[TransportSnapshot, str]:
        """One ``/band/transport`` arrived at CLOCK_MONOTONIC ``arrival_s``: update the model and publish.

        Returns:
            ``(snapshot, kind)`` as :meth:`TransportModel.update`.
        """
        snapshot, kind = self.model.update(arrival_s, state)
        self.publish(snapshot)
        return snapshot, kind

    def poll(self, now_s: float) -> None:
        """Stop the band when no message came for :attr:`timeout_s` while playing."""
        snapshot = self.model.expire(now_s, self.timeout_s)
        if snapshot is not None:
            self.note("timeout", "no transport message for %.1f s: playback stopped", self.timeout_s)
            self.publish(snapshot)

    @property
    def jitter_ms(self) -> float | None:
        """Spread of the clock model's offset samples (arrival jitter of the plugin's messages), ms."""
        return self.model.jitter_s * 1000.0 if self.model.jitter_s is not None else None

    @property
    def locked(self) -> bool:
        """Playing, with at least a few messages of the current run."""
        return self.snapshot.playing and self.model.sample_count >= 4

    def status(self, now_s: float) -> dict:
        """:meth:`SyncSource.status` plus the clock model's counters (messages, relocations, ...)."""
        out = super().status(now_s)
        out["transport"] = self.model.as_dict(now_s)
        return out
