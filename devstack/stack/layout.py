"""Where the embedded stack keeps its state and which loopback ports it uses.

All state lives under one directory (`BRIDGECAST_VAR`, default `<repo>/var`, git-ignored) and all ports derive
from one base (`BRIDGECAST_PORT_BASE`, default 18000), so a second stack (the test suite's) can run beside the
developer's without clashing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PORT_BASE = 18000


@dataclass(frozen=True)
class Ports:
    base: int

    def _at(self, offset: int) -> int:
        return self.base + offset

    # SeaweedFS also opens gRPC ports; we set them explicitly (+1 from each http port) instead of its +10000.
    @property
    def postgres(self): return self._at(432)
    @property
    def s3(self): return self._at(333)
    @property
    def weed_master(self): return self._at(933)
    @property
    def weed_volume(self): return self._at(940)
    @property
    def weed_filer(self): return self._at(888)
    @property
    def rtmp(self): return self._at(935)
    @property
    def rtmps(self): return self._at(936)
    @property
    def nginx_http(self): return self._at(81)
    @property
    def airflow(self): return self._at(80)
    @property
    def worker_log(self): return self._at(793)
    @property
    def trigger_log(self): return self._at(794)
    @property
    def gateway(self): return self._at(90)
    @property
    def gateway_callbacks(self): return self._at(89)  # nginx-rtmp's callbacks: loopback, apart from uploads
    @property
    def fanpage(self): return self._at(91)
    @property
    def portal(self): return self._at(92)
    @property
    def smtp(self): return self._at(25)
    @property
    def wordpress(self): return self._at(95)


@dataclass(frozen=True)
class Layout:
    var: Path
    ports: Ports

    @classmethod
    def from_env(cls, var: str | os.PathLike | None = None, port_base: int | None = None) -> "Layout":
        var = Path(var or os.environ.get("BRIDGECAST_VAR") or REPO / "var").resolve()
        base = port_base or int(os.environ.get("BRIDGECAST_PORT_BASE", DEFAULT_PORT_BASE))
        return cls(var=var, ports=Ports(base))

    @property
    def run(self) -> Path:  # pid files
        return self.var / "run"

    @property
    def log(self) -> Path:
        return self.var / "log"

    @property
    def secrets(self) -> Path:
        return self.var / "secrets"

    @property
    def airflow_home(self) -> Path:
        return self.var / "airflow"

    @property
    def recordings(self) -> Path:
        return self.var / "recordings"

    @property
    def sandboxes(self) -> Path:
        return self.var / "sandboxes"

    @property
    def wordpress(self) -> Path:  # the stack's WordPress: MariaDB data, php-fpm/nginx config, credentials.json
        return self.var / "wordpress"

    @property
    def env_file(self) -> Path:
        return self.var / "stack.env"

    def ensure(self) -> None:
        for d in (self.var, self.run, self.log, self.secrets, self.airflow_home, self.recordings, self.sandboxes):
            d.mkdir(parents=True, exist_ok=True)
        self.secrets.chmod(0o700)
