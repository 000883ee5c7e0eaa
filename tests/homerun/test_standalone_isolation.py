"""The process sandbox keeps namespaces apart as far as processes can (issue: an action read
another namespace's queued invocations from Homerun's Redis and took over its containers):
an action of one namespace, probing from inside its process, reaches no other container's
directory or socket, nor the data directory, the database, the sealing key or Redis."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.homerun.support import Standalone

pytestmark = pytest.mark.slow

PROBE = """
const fs = require('fs'), net = require('net'), path = require('path');
function attempt(f) { try { f(); return 'ok'; } catch (e) { return e.code || String(e); } }
function connect(p) {
  return new Promise(done => {
    const s = net.connect(p);
    s.on('connect', () => { s.destroy(); done('ok'); });
    s.on('error', e => done(e.code || String(e)));
  });
}
async function main(p) {
  const home = process.env.HOME, out = {};
  out['list work root'] = attempt(() => fs.readdirSync(path.dirname(home)));
  for (const d of p.others) {
    out['list ' + d] = attempt(() => fs.readdirSync(d));
    out['plant in ' + d] = attempt(() => fs.writeFileSync(d + '/planted', 'x'));
    out['connect ' + d] = await connect(d + '/action.sock');
  }
  for (const f of p.files) out['read ' + f] = attempt(() => fs.readFileSync(f));
  out['list data dir'] = attempt(() => fs.readdirSync(p.data_dir));
  out['connect redis'] = await connect(p.redis_socket);
  out.home = {mode: (fs.statSync(home).mode & 0o777).toString(8), tmpdir: process.env.TMPDIR};
  return {home, out};
}
"""
VICTIM = "let calls = 0; function main() { return {calls: ++calls}; }"


def test_an_action_reaches_nothing_of_another_namespace_or_of_homerun() -> None:
    assert os.geteuid() == 0, "the process sandbox gives containers their own uids as root"
    server = Standalone("process")
    server.data_dir.chmod(0o755)  # as `mkdir ~/.homerun` would leave it
    try:
        server.start()
        with httpx.Client(base_url=server.url, headers=server.seed_headers, timeout=120) as http:
            response = http.post("/runtime/admin/namespaces/acme/victim")
            assert response.status_code == 200, response.text
            victim = "/runtime/namespaces/acme/victim/actions/victim"
            probe = "/runtime/namespaces/guest/guest/actions/probe"
            for path, code in ((victim, VICTIM), (probe, PROBE)):
                actions, name = path.rsplit("/", 1)
                body = {"name": name, "code": code, "exec": {"kind": "nodejs:18"}}
                assert http.post(actions, json=body).status_code == 200
            assert http.post(victim, json={}).json()["response"]["result"] == {"calls": 1}

            work_root = Path(f"/tmp/homerun-{server.invoker_id}")
            others = [str(d) for d in work_root.iterdir()]
            assert others, "the victim's warm container has a directory"
            data = server.data_dir
            params = {
                "others": others,
                "files": [
                    str(data / f)
                    for f in (
                        "homerun.db",
                        "secret.key",
                        "standalone-credentials.json",
                        "standalone-redis-url",
                    )
                ],
                "data_dir": str(data),
                "redis_socket": str(data / "redis" / "redis.sock"),
            }
            response = http.post(probe, json=params)
            assert response.status_code == 200, response.text
            found = response.json()["response"]["result"]

            home, out = found["home"], found["out"]
            assert out.pop("home") == {"mode": "700", "tmpdir": home}  # private to it
            out = {k: v for k, v in out.items() if home not in k}  # its own directory
            assert out and set(out.values()) == {"EACCES"}, out
            # Its own directory may be among them: a stem cell listed before it took one.
            assert not any((Path(d) / "planted").exists() for d in others if d != home)
            assert http.post(victim, json={}).json()["response"]["result"] == {"calls": 2}
        assert (data.stat().st_mode & 0o777) == 0o700
    finally:
        server.stop()
