"""Run state in Redis (never in process memory), so a restarted service picks its runs up again.

Keys: `<prefix>:<id>` holds the RunStatus JSON; `<prefix>:index` orders ids by creation; and
`<prefix>:<id>:lease` names the replica driving the run, with a TTL it keeps renewing.
"""

from __future__ import annotations

import redis

from relmodel.tasks.service.models import RunStatus

# Renew the lease only if we still hold it (a replica that stalled must not steal it back).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RunStore:
    def __init__(self, client: redis.Redis, prefix: str = "relmodel:runs") -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, run_id: str) -> str:
        return f"{self.prefix}:{run_id}"

    def get(self, run_id: str) -> RunStatus | None:
        raw = self.client.get(self._key(run_id))
        return None if raw is None else RunStatus.model_validate_json(raw)

    def put(self, status: RunStatus) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._key(status.id), status.model_dump_json())
        pipe.zadd(f"{self.prefix}:index", {status.id: status.created_at})
        pipe.execute()

    def recent(self, limit: int = 100) -> list[RunStatus]:
        ids = self.client.zrevrange(f"{self.prefix}:index", 0, max(0, limit - 1))
        runs = (self.get(i.decode() if isinstance(i, bytes) else str(i)) for i in ids)
        return [r for r in runs if r is not None]

    def unfinished(self) -> list[RunStatus]:
        return [r for r in self.recent(limit=10_000) if not r.state.finished]

    def acquire(self, run_id: str, owner: str, ttl: float) -> bool:
        return bool(self.client.set(f"{self._key(run_id)}:lease", owner, nx=True, px=int(ttl * 1000)))

    def renew(self, run_id: str, owner: str, ttl: float) -> bool:
        return bool(self.client.eval(_RENEW, 1, f"{self._key(run_id)}:lease", owner, int(ttl * 1000)))

    def release(self, run_id: str, owner: str) -> None:
        self.client.eval(_RELEASE, 1, f"{self._key(run_id)}:lease", owner)

    def leased(self, run_id: str) -> bool:
        return bool(self.client.exists(f"{self._key(run_id)}:lease"))

    def ping(self) -> bool:
        return bool(self.client.ping())

