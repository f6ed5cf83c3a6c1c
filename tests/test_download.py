"""Weights download against a local HTTP server: success, checksum mismatch, connection cut, offline."""

import hashlib
import http.server
import io
import threading
import zipfile

import pytest
import torch

from cbam_viz.models.download import DownloadError, Pretrained, download, fetch

PAYLOAD = b"cbam-viz test checkpoint " * 4000


class Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):
        body, cut = self.routes.get(self.path, (None, False))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        if cut:
            self.wfile.flush()
            self.connection.close()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler.routes
    httpd.shutdown()
    Handler.routes.clear()


def checkpoint_zip(tmp_path):
    """A real checkpoint file zipped the way pytorchcv publishes it; returns (zip bytes, sha1 of the .pth)."""
    pth = tmp_path / "model.pth"
    torch.save({"fc.weight": torch.randn(3, 4)}, pth)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(pth, "model.pth")
    return buf.getvalue(), hashlib.sha1(pth.read_bytes()).hexdigest()


def test_fetch_unzips_verifies_and_caches(server, tmp_path):
    url, routes = server
    body, sha1 = checkpoint_zip(tmp_path)
    routes["/w.pth.zip"] = (body, False)
    spec = Pretrained("test", f"{url}/w.pth.zip", "model.pth", f"sha1:{sha1}", "test server")
    seen = []
    path = fetch(spec, tmp_path / "cache", progress=lambda done, total: seen.append((done, total)))
    assert path.name == "model.pth" and hashlib.sha1(path.read_bytes()).hexdigest() == sha1
    assert seen[-1] == (len(body), len(body))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["model.pth"]  # no leftovers
    routes.clear()  # a second call is served from the cache, without the network
    assert fetch(spec, tmp_path / "cache") == path


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, routes = server
    body, _ = checkpoint_zip(tmp_path)
    routes["/w.pth.zip"] = (body, False)
    spec = Pretrained("test", f"{url}/w.pth.zip", "model.pth", "sha1:" + "0" * 40, "test server")
    with pytest.raises(DownloadError, match="does not match its published checksum"):
        fetch(spec, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_connection_cut_mid_file_leaves_no_partial_file(server, tmp_path):
    url, routes = server
    routes["/big.bin"] = (PAYLOAD, True)
    dest = tmp_path / "cache" / "big.bin"
    with pytest.raises(DownloadError, match=r"closed after|could not download"):
        download(f"{url}/big.bin", dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    spec = Pretrained("test", f"{url}/big.bin", "big.bin", "sha256:" + hashlib.sha256(PAYLOAD).hexdigest(), "x")
    with pytest.raises(DownloadError):
        fetch(spec, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_plain_file_and_http_error(server, tmp_path):
    url, routes = server
    routes["/ok.bin"] = (PAYLOAD, False)
    spec = Pretrained("test", f"{url}/ok.bin", "ok.bin", "sha256:" + hashlib.sha256(PAYLOAD).hexdigest(), "x")
    assert fetch(spec, tmp_path / "c").read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{url}/missing", tmp_path / "m.bin")


def test_offline_message(tmp_path):
    # port 9 on localhost: nothing listens, like a machine without network
    with pytest.raises(DownloadError, match="may be offline"):
        download("http://127.0.0.1:9/weights.pth", tmp_path / "w.pth", timeout=2)
