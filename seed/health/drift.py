"""The config digest each server *should* run: render the spec now, `nats-server -t` it, cache it.

nats-server digests the parsed config (comments and file location do not count), so the digest of
a freshly rendered file equals `/varz` `config_digest` exactly when the running config is current.
Spawning `nats-server -t` is cheap but not free, and the console asks every few seconds: results
are cached until the spec's contents or its secrets directory change, and per rendered text.

One setting is the host's, not the spec's: the JetStream store directory (spec `history:`).
`seedctl up` puts it under the spec's state_dir, the Ansible role under the host's own
`nats_seed_jetstream_dir`. The expected digest is therefore rendered with the directory the
running server reports (`configured_store_dir` of /varz `jetstream.config.store_dir`) where
it reports one; everything else still comes from the spec.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Expected:
    digest: str | None
    error: str | None = None


def _stat_key(path: Path) -> tuple:
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (None, None)


def _secrets_key(secrets_dir: Path) -> tuple:
    """Changes to passwords, hashes or added users change the rendered config."""
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in Path(secrets_dir).iterdir()))
    except OSError:
        return ()


def configured_store_dir(varz: Mapping | None) -> str | None:
    """The `store_dir` a running server's config file gives, from its /varz (None: not known).

    nats-server always keeps its streams in a `jetstream` directory under the configured one and
    reports that (`store_dir: /x/jetstream` runs, and reports, `/x/jetstream/jetstream`)."""
    js = (varz or {}).get("jetstream")
    reported = ((js.get("config") if isinstance(js, Mapping) else None) or {}).get("store_dir")
    if not isinstance(reported, str) or not reported:
        return None
    path = PurePosixPath(reported)
    return str(path.parent) if path.name == "jetstream" and path.parent != path else None


class DigestOracle:
    """Expected config digests of a spec's servers (thread-safe; the console shares one)."""

    def __init__(self, binary: str | None = None):
        self.binary = binary
        self._lock = threading.Lock()
        self._by_text: dict[str, str] = {}
        self._by_spec: dict[tuple, dict[str, Expected]] = {}
        self.validations = 0  # how many times nats-server -t actually ran (tests and benchmarks read it)

    def expected(self, spec, store_dirs: Mapping[str, str] | None = None) -> dict[str, Expected]:
        """{server name: Expected} for every server of `spec`; never raises.

        `store_dirs`: {server name: JetStream store_dir its host really uses} (spec `history:`;
        `configured_store_dir`); a server not in it is expected under the spec's state_dir."""
        try:
            hash(spec)  # Spec is a frozen dataclass: equal contents, same cache entry
            spec_key = spec
        except TypeError:
            spec_key = (str(spec.path), _stat_key(Path(spec.path)))
        dirs = dict(store_dirs or {})
        key = (spec_key, _secrets_key(spec.secrets_dir), tuple(sorted(dirs.items())))
        with self._lock:
            hit = self._by_spec.get(key)
            if hit is not None:
                return hit
            result = self._compute(spec, dirs)
            self._by_spec = {key: result}  # one spec per oracle in practice: keep only the newest
            return result

    def _compute(self, spec, store_dirs: Mapping[str, str]) -> dict[str, Expected]:
        from seed import natsbin, render, users  # imported late: `seedctl health --help` stays fast

        try:
            hashes = users.all_hashes(spec)
            texts = {
                s.name: render.render_server(spec, s, hashes, store_dir=store_dirs.get(s.name))
                for s in spec.servers
            }
        except Exception as exc:  # noqa: BLE001 - any render failure becomes the check's reason
            log.warning("cannot render %s for the drift check: %s", spec.path, exc)
            return {s.name: Expected(None, f"cannot render the spec: {exc}") for s in spec.servers}
        out: dict[str, Expected] = {}
        with tempfile.TemporaryDirectory(prefix="seedctl-drift-") as tmp:
            for name, text in texts.items():
                text_key = hashlib.sha256(text.encode()).hexdigest()
                digest = self._by_text.get(text_key)
                if digest is None:
                    conf = Path(tmp) / f"{name}.conf"
                    conf.write_text(text, encoding="utf-8")
                    try:
                        digest = natsbin.validate(conf, self.binary)
                    except Exception as exc:  # noqa: BLE001 - NatsServerError or a missing binary
                        out[name] = Expected(None, str(exc))
                        continue
                    self.validations += 1
                    self._by_text[text_key] = digest
                out[name] = Expected(digest)
        return out
