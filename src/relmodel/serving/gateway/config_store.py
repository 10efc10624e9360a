"""The CumPT config, re-read when its file changes: a new beta takes effect without a restart.

Kubernetes updates a ConfigMap volume by swapping a `..data` symlink, so the file's own inode
never changes in place. We therefore stat the path *through* its symlinks and key on the
resolved target plus (inode, mtime, size): any swap or rewrite is seen on the next check.
A new file that does not parse is refused and the last good config stays in force.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from pydantic import ValidationError

from relmodel.errors import DataError
from relmodel.serving.config import CumPTConfig

log = logging.getLogger(__name__)

Signature = tuple[str, int, int, int]


@dataclass(frozen=True)
class LoadedConfig:
    config: CumPTConfig
    loaded_at: float
    signature: Signature


class ConfigStore:
    """Thread-safe holder of the current CumPT config with a cheap change check."""

    def __init__(self, path: str, check_interval_s: float = 1.0) -> None:
        self.path = path
        self.check_interval_s = check_interval_s
        self._current: LoadedConfig | None = None
        self._last_check = float("-inf")
        self.last_error: str | None = None
        self.reloads = 0
        self._lock = threading.Lock()

    def current(self) -> CumPTConfig | None:
        """The config in force, after a re-check if the check interval has passed."""
        now = time.monotonic()
        if now - self._last_check >= self.check_interval_s:
            self.refresh()
        return self._current.config if self._current else None

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when a new config was loaded."""
        with self._lock:
            self._last_check = time.monotonic()
            try:
                signature = _signature(self.path)
            except OSError as exc:
                self.last_error = f"{self.path}: {exc.strerror or exc}"
                return False
            if self._current and self._current.signature == signature:
                return False
            try:
                with open(self.path, encoding="utf-8") as handle:
                    config = CumPTConfig.model_validate_json(handle.read())
            except (OSError, ValidationError, DataError) as exc:
                self.last_error = f"{self.path}: invalid CumPT config: {exc}"
                log.error("keeping the previous CumPT config: %s", self.last_error)
                return False
            self._current = LoadedConfig(config=config, loaded_at=time.time(), signature=signature)
            self.last_error = None
            self.reloads += 1
            log.info("loaded CumPT config from %s: model=%s beta=%s", self.path, config.model, config.beta)
            return True


def _signature(path: str) -> Signature:
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, st.st_ino, st.st_mtime_ns, st.st_size
