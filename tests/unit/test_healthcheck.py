"""The compose healthchecks (chaos_events.demo.healthcheck) against a real listening socket and HTTP server."""
from __future__ import annotations

import http.server
import socket
import threading

from chaos_events.demo import healthcheck
from tests.helpers import free_port


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/health" else 503
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_tcp_is_healthy_only_when_every_port_accepts():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert healthcheck.main(["tcp", str(port)]) == 0
        closed = free_port()
        assert healthcheck.main(["tcp", str(port), str(closed)]) == 1


def test_http_is_healthy_only_on_200(capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert healthcheck.main(["http", f"{base}/health"]) == 0
        assert healthcheck.main(["http", f"{base}/other"]) == 1
        assert "answered 503" in capsys.readouterr().out
    finally:
        server.shutdown()
        server.server_close()
    assert healthcheck.main(["nonsense"]) == 2
