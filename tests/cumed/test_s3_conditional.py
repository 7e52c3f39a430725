"""An S3-compatible endpoint that ignores ``If-None-Match: *`` must not get a publish: on it two
publishers would claim one version and overwrite each other. The endpoint here is a real HTTP
proxy on 127.0.0.1 in front of the test's moto server that drops the header, as such a store does."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import threading
from urllib.parse import urlsplit

import pytest

from tests.cumed.test_remote_store import _env, bucket, cli, s3_server  # noqa: F401 - fixtures
from tests.cumed.test_store import docs_table


class _DropConditional(http.server.BaseHTTPRequestHandler):
    upstream: str = ""

    def _forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("if-none-match", "host")}
        up = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        conn.request(self.command, self.path, body=body or None, headers={**headers, "Host": up.netloc})
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def lax_endpoint(s3_server):
    handler = type("Handler", (_DropConditional,), {"upstream": s3_server})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_publish_refuses_an_endpoint_that_ignores_conditional_puts(bucket, lax_endpoint, tmp_path):  # noqa: F811
    import boto3

    rows = tmp_path / "rows.parquet"
    import pyarrow.parquet as pq

    pq.write_table(docs_table(20), rows)
    # the proxy really serves the bucket: reads and plain writes go through
    env = _env(AWS_ENDPOINT_URL=lax_endpoint)
    assert cli("datasets", "list", "--store", f"s3://{bucket}/team", "--json", env=env).returncode == 0
    p = cli("datasets", "publish", "corpus", "--from", str(rows), "--store", f"s3://{bucket}/team", env=env)
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "conditional writes" in lines[0] and "nothing was published" in lines[0], p.stderr
    left = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="team/").get("Contents", [])
    assert left == []  # no claim, no file, no probe left behind
    # the same publish straight to the honest endpoint works
    ok = cli("datasets", "publish", "corpus", "--from", str(rows), "--store", f"s3://{bucket}/team", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ref"] == "corpus@1"
    assert os.environ["AWS_ENDPOINT_URL"] != lax_endpoint
